using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;
using OpenAI.FineTuning;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// Automatic evaluation of a succeeded job (its eval run on the base and on the tuned model) and the promotion gate:
/// in a project that requires evaluation, a model is served, shared or trained on only once it passes. The verdicts
/// are forced by the bar, not by what a tiny model happens to learn: an eval nobody passes gives both models a pass
/// rate of 0, which meets `min_improvement` -1 and misses 1.
/// </summary>
public sealed class PromotionGateTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    /// <summary>The training service's queue of FineTunedModelEvaluated and its error queue (MassTransit's kebab-case names).</summary>
    private const string ConsumerQueue = "fine-tuned-model-evaluated";
    private const string ErrorQueue = ConsumerQueue + "_error";

    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task A_gated_project_publishes_a_model_only_when_its_evaluation_passes()
    {
        var (projectId, key, file) = await GatedProjectAsync();
        using var http = Platform.Http(key);
        var evalId = await CreateEvalAsync(http);

        // Without an evaluation, or with one that cannot run, the job is refused before anything is created.
        await AssertRefusedAsync(http, new { model = "local-nano", training_file = file }, "evaluation", "evaluation_required");
        await AssertRefusedAsync(http, JobWith(file, Evaluation("eval_missing", minImprovement: 0)), "evaluation.eval_id");
        await AssertRefusedAsync(http, JobWith(file, new { eval_id = evalId, data_source = DataSource(model: "local-nano") }), "evaluation.data_source.model");
        await AssertRefusedAsync(http, JobWith(file, new { eval_id = evalId, data_source = DataSource(ticket: 42) }), "evaluation.data_source.source.content[0].item");
        await AssertRefusedAsync(http, JobWith(file, Evaluation(evalId, minImprovement: 2)), "evaluation.min_improvement");
        Assert.Empty(await Platform.QueryTrainingAsync($"SELECT \"Id\" FROM jobs WHERE \"ProjectId\" = '{projectId}'", reader => reader.GetString(0)));

        // Misses the bar: the model is held while evaluated, then rejected; both runs are the project's to read.
        var rejected = await CreateJobAsync(http, JobWith(file, Evaluation(evalId, minImprovement: 1)));
        var rejectedModel = (await Platform.WaitForJobAsync(key, rejected, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;
        await AssertNotServedAsync(key, rejectedModel);
        var verdict = await WaitForVerdictAsync(key, rejected);
        Assert.StartsWith("Evaluation did not pass: pass rate 0 for " + rejectedModel, verdict, StringComparison.Ordinal);
        Assert.EndsWith($"{rejectedModel} is rejected and stays unpublished", verdict, StringComparison.Ordinal);
        await AssertNotServedAsync(key, rejectedModel);
        var (otherProject, _) = await Platform.Admin.CreateProjectAsync("owner");
        await AssertRefusedAsync(http, $"/v1/fine_tuning/checkpoints/{Uri.EscapeDataString(rejectedModel)}/permissions", new { project_ids = new[] { otherProject } }, "model", "model_not_published");
        await AssertRefusedAsync(http, new { model = rejectedModel, training_file = file, evaluation = Evaluation(evalId, 0) }, "model", "model_not_published");
        var runs = (await http.GetFromJsonAsync<JsonElement>($"/v1/evals/{evalId}/runs")).GetProperty("data").EnumerateArray()
            .Where(run => run.GetProperty("metadata").GetProperty("fine_tuning_job").GetString() == rejected).ToList();
        Assert.Equal(new[] { "local-nano", rejectedModel }.Order(StringComparer.Ordinal), runs.Select(run => run.GetProperty("model").GetString()).Order(StringComparer.Ordinal));
        Assert.All(runs, run => Assert.Equal("completed", run.GetProperty("status").GetString()));

        // Meets the bar: published, then served like any model.
        var promoted = await CreateJobAsync(http, JobWith(file, Evaluation(evalId, minImprovement: -1)));
        var promotedModel = (await Platform.WaitForJobAsync(key, promoted, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;
        Assert.EndsWith($"{promotedModel} is published", await WaitForVerdictAsync(key, promoted), StringComparison.Ordinal);
        var completion = await Platform.Chat(key, promotedModel).CompleteChatAsync([new UserChatMessage("ticket 1: refund?")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        Assert.Equal(promotedModel, completion.Value.Model);
    }

    [Fact]
    public async Task Without_the_gate_an_evaluation_is_reported_and_the_model_is_served_at_once()
    {
        var (_, key) = fixture.TeamA;
        using var http = Platform.Http(key);
        var evalId = await CreateEvalAsync(http);
        var jobId = await CreateJobAsync(http, JobWith(fixture.TeamAFile, Evaluation(evalId, minImprovement: 1)));
        var model = (await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;

        var completion = await Platform.Chat(key, model).CompleteChatAsync([new UserChatMessage("ticket 1: refund?")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        Assert.Equal(model, completion.Value.Model);
        var verdict = await WaitForVerdictAsync(key, jobId);
        Assert.StartsWith("Evaluation did not pass", verdict, StringComparison.Ordinal);
        Assert.DoesNotContain("rejected", verdict, StringComparison.Ordinal);
        await Platform.Chat(key, model).CompleteChatAsync([new UserChatMessage("ticket 2: refund?")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
    }

    [Fact]
    public async Task An_evaluation_whose_runs_are_deleted_fails_and_the_gated_model_stays_unpublished()
    {
        var (_, key, file) = await GatedProjectAsync();
        using var http = Platform.Http(key);
        var evalId = await CreateEvalAsync(http);

        // A bar any result meets (-1), so only a failed evaluation can hold the model; enough items that the runs are
        // still going when the eval (and with it both runs) is deleted.
        var items = Enumerable.Range(0, 200).Select(i => new { item = new { ticket = $"ticket {i}: where is my parcel?" } }).ToArray();
        var dataSource = new
        {
            type = "completions",
            input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.ticket}}" } } },
            sampling_params = new { max_completion_tokens = 64, temperature = 1 },
            source = new { type = "file_content", content = items },
        };
        var jobId = await CreateJobAsync(http, JobWith(file, new { eval_id = evalId, data_source = dataSource, min_improvement = -1 }));
        var model = (await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await http.DeleteAsync($"/v1/evals/{evalId}")).StatusCode);

        var verdict = await WaitForVerdictAsync(key, jobId);
        Assert.StartsWith("Evaluation could not be completed: ", verdict, StringComparison.Ordinal);
        Assert.EndsWith($"{model} is rejected and stays unpublished", verdict, StringComparison.Ordinal);
        await AssertNotServedAsync(key, model);
    }

    [Fact]
    public async Task A_verdict_lost_on_its_way_to_training_is_asked_for_again()
    {
        var (_, key, file) = await GatedProjectAsync();
        using var http = Platform.Http(key);
        var jobId = await CreateJobAsync(http, JobWith(file, Evaluation(await CreateEvalAsync(http), minImprovement: -1)));
        var model = (await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;
        await WaitForVerdictAsync(key, jobId);

        // As if FineTunedModelEvaluated had never arrived: no verdict, the model held, and the last ask long ago.
        await Platform.QueryTrainingAsync($"""
            UPDATE jobs SET "EvaluationVerdict" = NULL, "EvaluationRequestedAt" = now() - interval '1 hour' WHERE "Id" = '{jobId}' RETURNING "Id"
            """, reader => reader.GetString(0));
        await Platform.QueryTrainingAsync($"""
            UPDATE models SET "Status" = 'pending_evaluation' WHERE "Id" = '{model}' RETURNING "Id"
            """, reader => reader.GetString(0));
        await Platform.QueryTrainingAsync($"""DELETE FROM job_events WHERE "JobId" = '{jobId}' AND "Message" LIKE 'Evaluation %' RETURNING "Id" """, reader => reader.GetString(0));
        await AssertNotServedAsync(key, model);

        // The scheduler's pass asks again; the evaluation service re-sends the verdict it reached; the model is published.
        Assert.EndsWith($"{model} is published", await WaitForVerdictAsync(key, jobId), StringComparison.Ordinal);
        var completion = await Platform.Chat(key, model).CompleteChatAsync([new UserChatMessage("ticket 1: refund?")], new ChatCompletionOptions { MaxOutputTokenCount = 4 });
        Assert.Equal(model, completion.Value.Model);
    }

    [Fact]
    public async Task A_verdict_forged_on_the_bus_does_not_open_the_gate_and_the_real_later_verdict_decides()
    {
        var (projectId, key, file) = await GatedProjectAsync();
        using var http = Platform.Http(key);
        var evalId = await CreateEvalAsync(http);

        // The evaluation service (which checks the job's evaluation at create) goes down while the job trains and
        // finishes: nothing can reach a real verdict.
        var jobId = await CreateJobAsync(http, JobWith(file, Evaluation(evalId, minImprovement: 1)));
        var evaluationAddresses = await Platform.StopEvaluationAsync();
        var evaluationDown = true;
        try
        {
            var model = (await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished)).GetProperty("fine_tuned_model").GetString()!;
            await AssertNotServedAsync(key, model);

            // A compromised peer holds the services' broker credentials: the gateway's own bus publishes the forgery.
            var forged = new FineTunedModelEvaluated(jobId, projectId, model, evalId, "evalrun_forged_base", "evalrun_forged_tuned",
                EvaluationVerdict.Promote, "forged: pass rate 1 against 0") { BaselinePassRate = 0, CandidatePassRate = 1 };
            var failedBefore = (await QueueAsync(ErrorQueue)).Messages;
            await Platform.Gateway.Services.GetRequiredService<IBus>().Publish(forged);

            // Training took it and asked the evaluation service, which did not answer: the nudge failed into its
            // error queue, and the model stays held.
            await WaitUntilAsync(async () => (await QueueAsync(ErrorQueue)).Messages > failedBefore, "the forged verdict was never consumed");
            await AssertNotServedAsync(key, model);
            Assert.DoesNotContain(await EventMessagesAsync(key, jobId), message => message.StartsWith("Evaluation ", StringComparison.Ordinal));

            // The evaluation service returns, runs the evaluation and rejects the model: its verdict is the one recorded.
            Platform.StartEvaluation(evaluationAddresses);
            evaluationDown = false;
            var verdict = await WaitForVerdictAsync(key, jobId);
            Assert.StartsWith("Evaluation did not pass: pass rate 0 for " + model, verdict, StringComparison.Ordinal);
            Assert.EndsWith($"{model} is rejected and stays unpublished", verdict, StringComparison.Ordinal);

            // A forgery after the real verdict changes nothing either (the consumer reads the verdict on record).
            var consumedBefore = (await QueueAsync(ConsumerQueue)).Acknowledged;
            await Platform.Gateway.Services.GetRequiredService<IBus>().Publish(forged with { EventId = Guid.NewGuid() });
            await WaitUntilAsync(async () => (await QueueAsync(ConsumerQueue)).Acknowledged > consumedBefore, "the second forgery was never consumed");
            await AssertNotServedAsync(key, model);
            Assert.Single(await EventMessagesAsync(key, jobId), message => message.StartsWith("Evaluation ", StringComparison.Ordinal));
            Assert.Equal(["rejected"], await Platform.QueryTrainingAsync($"SELECT \"Status\" FROM models WHERE \"Id\" = '{model}'", reader => reader.GetString(0)));
        }
        finally
        {
            if (evaluationDown)
            {
                Platform.StartEvaluation(evaluationAddresses);
            }
        }
    }

    private Task<(long Messages, long Acknowledged)> QueueAsync(string queue) => PlatformServers.QueueStatsAsync(Platform.Environment.RabbitMq, queue);

    private async Task<List<string>> EventMessagesAsync(string key, string jobId)
    {
        var messages = new List<string>();
        await foreach (var item in Platform.FineTuning(key).GetJobAsync(jobId).Result.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))
        {
            messages.Add(item.Message);
        }

        return messages;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(200);
        }
    }

    /// <summary>A new project whose training quota requires evaluation, with a validated training file.</summary>
    private async Task<(string ProjectId, string Key, string File)> GatedProjectAsync()
    {
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("owner");
        using var admin = Platform.Http(TrainingPlatform.AdminKey);
        var quota = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/training-quota", new { require_evaluation = true });
        Assert.True((await quota.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("require_evaluation").GetBoolean());
        return (projectId, key, await Platform.UploadTrainingFileAsync(key));
    }

    private static async Task<string> CreateEvalAsync(HttpClient http)
    {
        var eval = await http.PostAsJsonAsync("/v1/evals", new
        {
            name = "routing",
            data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { ticket = new { type = "string" } }, required = new[] { "ticket" } } },
            testing_criteria = new[] { new { type = "string_check", name = "never", input = "{{sample.output_text}}", reference = "no reply is this", operation = "eq" } },
        });
        Assert.Equal(HttpStatusCode.Created, eval.StatusCode);
        return (await eval.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static object DataSource(string? model = null, object? ticket = null)
    {
        var source = new Dictionary<string, object>
        {
            ["type"] = "completions",
            ["input_messages"] = new { type = "template", template = new[] { new { role = "user", content = "{{item.ticket}}" } } },
            ["sampling_params"] = new { max_completion_tokens = 4, temperature = 0 },
            ["source"] = new { type = "file_content", content = new[] { new { item = new { ticket = ticket ?? "ticket 1: refund?" } }, new { item = new { ticket = ticket ?? "ticket 2: login" } } } },
        };
        if (model is not null)
        {
            source["model"] = model;
        }

        return source;
    }

    private static object Evaluation(string evalId, double minImprovement) => new { eval_id = evalId, data_source = DataSource(), min_improvement = minImprovement };

    private static object JobWith(string file, object evaluation) => new
    {
        model = "local-nano",
        training_file = file,
        method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 1, batch_size = 5 } } },
        evaluation,
    };

    private static async Task<string> CreateJobAsync(HttpClient http, object body)
    {
        var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
    }

    private static Task AssertRefusedAsync(HttpClient http, object body, string param, string? code = null) =>
        AssertRefusedAsync(http, "/v1/fine_tuning/jobs", body, param, code);

    private static async Task AssertRefusedAsync(HttpClient http, string path, object body, string param, string? code)
    {
        var response = await http.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        if (code is not null)
        {
            Assert.Equal(code, error.GetProperty("code").GetString());
        }
    }

    private async Task AssertNotServedAsync(string key, string model)
    {
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => Platform.Chat(key, model).CompleteChatAsync([new UserChatMessage("ticket 1: refund?")]));
        Assert.Equal(403, refused.Status);
        Assert.Contains("model_not_published", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>The job event that records the evaluation's verdict, once it has arrived.</summary>
    private async Task<string> WaitForVerdictAsync(string key, string jobId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            await foreach (var item in Platform.FineTuning(key).GetJobAsync(jobId).Result.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))
            {
                if (item.Message.StartsWith("Evaluation ", StringComparison.Ordinal))
                {
                    return item.Message;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, $"No evaluation verdict for {jobId}.");
            await Task.Delay(200);
        }
    }
}
