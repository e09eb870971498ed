using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune jobs create|get|list|cancel|pause|resume|watch`: fine-tuning jobs, followed through the event stream: on a
/// terminal as one screen redrawn in place, elsewhere as lines (events, and the metrics of every tenth of the steps).
/// </summary>
public static class JobCommands
{
    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var model = new Option<string>("--model") { Description = "The base model: a preset (local-nano, local-small) or a fine-tuned model you may use.", Required = true };
        var trainingFile = new Option<string>("--training-file") { Description = "A processed fine-tune file id (see `ftune files upload`).", Required = true };
        var validationFile = new Option<string?>("--validation-file");
        var suffix = new Option<string?>("--suffix") { Description = "Part of the model id: ft:{base}:{project}:{suffix}:{job}." };
        var method = new Option<string>("--method") { DefaultValueFactory = _ => "supervised" };
        method.AcceptOnlyFromAmong("supervised", "dpo");
        var epochs = new Option<int?>("--epochs") { Description = "n_epochs (default: auto, from the file's size)." };
        var batchSize = new Option<int?>("--batch-size");
        var learningRate = new Option<double?>("--learning-rate-multiplier");
        var seed = new Option<int?>("--seed");
        var loraRank = new Option<int?>("--lora-rank") { Description = "Open-weight bases: the LoRA adapter's rank (default 8)." };
        var loraAlpha = new Option<double?>("--lora-alpha") { Description = "Open-weight bases: LoRA's alpha (default 16)." };
        var loraDropout = new Option<double?>("--lora-dropout") { Description = "Open-weight bases: LoRA's dropout (default 0.05)." };
        var evalId = new Option<string?>("--eval") { Description = "Evaluate the tuned model against its base with this eval when the job succeeds." };
        var evalDataSource = new Option<FileInfo?>("--eval-data-source") { Description = "JSON file: the completions data source to sample both models with (no model in it)." };
        var evalFile = new Option<string?>("--eval-file") { Description = "An uploaded evals file (purpose evals) with the items: sets the data source's source to it." };
        var minImprovement = new Option<double?>("--min-improvement") { Description = "Pass-rate margin over the base the tuned model needs (-1..1, default 0)." };
        var watch = new Option<bool>("--watch") { Description = "Follow the job until it ends (as `ftune jobs watch`)." };
        var create = new Command("create", "Start a fine-tuning job.")
        {
            model, trainingFile, validationFile, suffix, method, epochs, batchSize, learningRate, seed, loraRank, loraAlpha, loraDropout,
            evalId, evalDataSource, evalFile, minImprovement, watch,
        };
        create.SetAction(async (parse, cancellationToken) =>
        {
            var hyperparameters = new JsonObject();
            Add(hyperparameters, "n_epochs", parse.GetValue(epochs));
            Add(hyperparameters, "batch_size", parse.GetValue(batchSize));
            Add(hyperparameters, "learning_rate_multiplier", parse.GetValue(learningRate));
            Add(hyperparameters, "lora_rank", parse.GetValue(loraRank));
            Add(hyperparameters, "lora_alpha", parse.GetValue(loraAlpha));
            Add(hyperparameters, "lora_dropout", parse.GetValue(loraDropout));
            var body = new JsonObject
            {
                ["model"] = parse.GetValue(model),
                ["training_file"] = parse.GetValue(trainingFile),
                ["method"] = new JsonObject { ["type"] = parse.GetValue(method), [parse.GetValue(method)!] = new JsonObject { ["hyperparameters"] = hyperparameters } },
            };
            Add(body, "validation_file", parse.GetValue(validationFile));
            Add(body, "suffix", parse.GetValue(suffix));
            Add(body, "seed", parse.GetValue(seed));
            if (parse.GetValue(evalId) is { } eval)
            {
                var source = parse.GetValue(evalDataSource) ?? throw new CliException("--eval needs --eval-data-source: the data source to sample both models with.", 2);
                var dataSource = await JsonFiles.ReadObjectAsync(source, "--eval-data-source", cancellationToken);
                JsonFiles.UseItemsFile(dataSource, parse.GetValue(evalFile));
                var evaluation = new JsonObject { ["eval_id"] = eval, ["data_source"] = dataSource };
                Add(evaluation, "min_improvement", parse.GetValue(minImprovement));
                body["evaluation"] = evaluation;
            }

            var platform = connection.Open(parse);
            var job = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, "fine_tuning/jobs") { Content = JsonContent.Create(body) }, cancellationToken);
            await output.ShowAsync(parse, job, text => WriteJobAsync(text, job));
            return parse.GetValue(watch) ? await WatchAsync(platform, output, parse, job.GetProperty("id").GetString()!, cancellationToken) : 0;
        });

        var jobId = new Argument<string>("job-id");
        var get = new Command("get", "Show a job.") { jobId };
        get.SetAction(async (parse, cancellationToken) =>
        {
            await ShowJobAsync(output, parse, await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Get, JobPath(parse.GetValue(jobId)!)), cancellationToken));
            return 0;
        });

        var limit = new Option<int>("--limit") { DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List the project's jobs, newest first.") { limit };
        list.SetAction(async (parse, cancellationToken) =>
        {
            var page = await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Get, $"fine_tuning/jobs?limit={parse.GetValue(limit)}"), cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "STATUS", "CREATED", "MODEL", "FINE-TUNED MODEL"],
                job => [Table.Text(job, "id"), Table.Text(job, "status"), Table.Time(job, "created_at"), Table.Text(job, "model"), Table.Text(job, "fine_tuned_model")]);
            return 0;
        });

        var cancel = new Command("cancel", "Cancel a job that has not finished.") { jobId };
        cancel.SetAction(async (parse, cancellationToken) =>
        {
            await ShowJobAsync(output, parse, await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Post, JobPath(parse.GetValue(jobId)!) + "/cancel"), cancellationToken));
            return 0;
        });

        var pause = new Command("pause", "Pause a queued or running job (it stops at its next step); `resume` continues from its last checkpoint.") { jobId };
        pause.SetAction(async (parse, cancellationToken) =>
        {
            await ShowJobAsync(output, parse, await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Post, JobPath(parse.GetValue(jobId)!) + "/pause"), cancellationToken));
            return 0;
        });

        var resume = new Command("resume", "Resume a paused job from its last checkpoint.") { jobId };
        resume.SetAction(async (parse, cancellationToken) =>
        {
            await ShowJobAsync(output, parse, await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Post, JobPath(parse.GetValue(jobId)!) + "/resume"), cancellationToken));
            return 0;
        });

        var follow = new Command("watch", "Follow a job (from its first event) until it ends, live on a terminal: status, steps, ETA, loss, latest events. Exit 0 only if it succeeded.") { jobId };
        follow.SetAction((parse, cancellationToken) => WatchAsync(connection.Open(parse), output, parse, parse.GetValue(jobId)!, cancellationToken));

        return new Command("jobs", "Fine-tuning jobs.") { create, get, list, cancel, pause, resume, follow };
    }

    /// <summary>
    /// Our SSE stream of the job's events (each OpenAI's fine_tuning.job.event), then the job's outcome. With `--json`
    /// every event and then the job, one JSON object per line.
    /// </summary>
    private static async Task<int> WatchAsync(PlatformConnection platform, CommandOutput output, ParseResult parse, string jobId, CancellationToken cancellationToken)
    {
        var json = output.IsJson(parse);
        var progress = new JobProgress(jobId);
        var screen = !json && output.Terminal.OutputIsTerminal ? new LiveScreen(output.Text, () => TerminalInfo.Width) : null;
        var summary = new MetricsSummary();
        var (drawnAt, fetchedAt) = (DateTime.MinValue, DateTime.MinValue);
        Task<JsonElement> GetJobAsync() => platform.SendAsync(new HttpRequestMessage(HttpMethod.Get, JobPath(jobId)), cancellationToken);
        if (screen is not null)
        {
            progress.Update(await GetJobAsync());
            screen.Draw(JobScreen.Render(progress, TerminalInfo.Width));
        }

        using (var response = await platform.Http.GetAsync(JobPath(jobId) + "/events?stream=true", HttpCompletionOption.ResponseHeadersRead, cancellationToken))
        {
            if (!response.IsSuccessStatusCode)
            {
                throw platform.ErrorOf((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]")
                {
                    continue;
                }

                var jobEvent = JsonDocument.Parse(line["data: ".Length..]).RootElement;
                var isStep = progress.Apply(jobEvent);
                if (json)
                {
                    await output.WriteJsonAsync(jobEvent);
                }
                else if (screen is not null)
                {
                    // A replayed history arrives all at once: redraw at most ten times a second, but always for
                    // an event that is not a step, with the job's status as it is now (asked at most once a second).
                    if (!isStep && DateTime.UtcNow - fetchedAt >= TimeSpan.FromSeconds(1))
                    {
                        progress.Update(await GetJobAsync());
                        fetchedAt = DateTime.UtcNow;
                    }

                    if (!isStep || DateTime.UtcNow - drawnAt >= TimeSpan.FromMilliseconds(100))
                    {
                        screen.Draw(JobScreen.Render(progress, TerminalInfo.Width));
                        drawnAt = DateTime.UtcNow;
                    }
                }
                else if (!isStep || summary.ShouldPrint(progress.Step, progress.TotalSteps))
                {
                    await output.WriteLineAsync(JobProgress.EventLine(jobEvent));
                }
            }
        }

        var job = await GetJobAsync();
        if (screen is not null)
        {
            progress.Update(job);
            screen.Draw(JobScreen.Render(progress, TerminalInfo.Width));
        }

        await ShowJobAsync(output, parse, job);
        return job.GetProperty("status").GetString() == "succeeded" ? 0 : 1;
    }

    private static Task ShowJobAsync(CommandOutput output, ParseResult parse, JsonElement job) => output.ShowAsync(parse, job, text => WriteJobAsync(text, job));

    private static string JobPath(string jobId) => $"fine_tuning/jobs/{Uri.EscapeDataString(jobId)}";

    private static async Task WriteJobAsync(TextWriter output, JsonElement job)
    {
        var tuned = job.TryGetProperty("fine_tuned_model", out var value) && value.ValueKind == JsonValueKind.String ? $" -> {value.GetString()}" : "";
        await output.WriteLineAsync($"{job.GetProperty("id").GetString()}  {job.GetProperty("status").GetString()}  {job.GetProperty("model").GetString()}{tuned}");
        if (job.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
        {
            await output.WriteLineAsync($"  error: {message.GetString()} ({error.GetProperty("code").GetString()})");
        }
    }

    private static void Add<T>(JsonObject into, string name, T? value)
    {
        if (value is not null)
        {
            into[name] = JsonValue.Create(value);
        }
    }
}
