using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Graders;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.ServiceDefaults;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// Executes one claimed run: reads its items, samples the model for each (completions) through the gateway as the
/// run's project, grades every item with every criterion, and writes output items and counts every
/// FlushInterval. Items already graded by an earlier attempt are skipped, so a resumed run grades each item once.
/// A flush that finds the run no longer in progress under this executor (cancelled, deleted, or taken over after a
/// lost lease) stops the run here.
/// </summary>
public sealed partial class RunProcessor(
    EvaluationDbContext db,
    IServiceScopeFactory scopes,
    RunItems runItems,
    InferenceService.InferenceServiceClient inference,
    IOptions<RunOptions> options,
    TimeProvider time,
    ILogger<RunProcessor> logger)
{

    public async Task ProcessAsync(string runId, string owner, CancellationToken stoppingToken)
    {
        var run = await db.Runs.AsNoTracking().SingleAsync(run => run.Id == runId, stoppingToken);
        var eval = await db.Evals.AsNoTracking().SingleAsync(eval => eval.Id == run.EvalId, stoppingToken);
        var graders = EvalDefinition.Graders(eval);
        var dataSource = RunDataSource.Read(run.DataSource);
        var itemSchema = JsonNode.Parse(eval.ItemSchema);
        var caller = new InternalCaller(run.ProjectId, Roles.Member, run.KeyId).ToMetadata();
        var chat = new GatewayChatModel(inference, caller);
        foreach (var usage in JsonNode.Parse(run.PerModelUsage)!.AsArray())
        {
            chat.Seed(usage!["model_name"]!.GetValue<string>(), usage["invocation_count"]!.GetValue<int>(),
                usage["prompt_tokens"]!.GetValue<long>(), usage["completion_tokens"]!.GetValue<long>());
        }

        var tally = new RunTally(graders);
        var done = new HashSet<int>();
        foreach (var graded in await db.OutputItems.AsNoTracking().Where(item => item.RunId == runId)
                     .Select(item => new { item.DatasourceItemId, item.Status, item.Results }).ToListAsync(stoppingToken))
        {
            done.Add(graded.DatasourceItemId);
            tally.Add(graded.Status, JsonNode.Parse(graded.Results)!.AsArray());
        }

        using var runStopped = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var pending = new List<EvalOutputItem>();
        var flushing = FlushPeriodicallyAsync(runId, owner, pending, tally, chat, runStopped);
        string? errorCode = null, errorMessage = null;
        try
        {
            var items = runItems.ReadAsync(dataSource, caller, runStopped.Token)
                .Select(entry => entry.Index < options.Value.MaxItems
                    ? entry
                    : throw new RunFailedException("too_many_items", $"A run grades at most {options.Value.MaxItems} items."))
                .Where(entry => !done.Contains(entry.Index));
            await Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = options.Value.ItemConcurrency, CancellationToken = runStopped.Token },
                async (entry, cancellationToken) =>
                {
                    var (output, results) = await GradeAsync(run, dataSource, itemSchema, graders, chat, entry.Index, entry.Row, cancellationToken);
                    tally.Add(output.Status, results);
                    PlatformMetrics.EvalItemsGraded.Add(1, new KeyValuePair<string, object?>("status", output.Status));
                    lock (pending)
                    {
                        pending.Add(output);
                    }
                });
        }
        catch (RunFailedException ex)
        {
            (errorCode, errorMessage) = (ex.Code, ex.Message);
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested && runStopped.IsCancellationRequested)
        {
            // Cancelled or taken away: the flush that noticed has already stopped writing for this run.
            await flushing;
            return;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: keep what was graded, so the instance that continues the run does not pay for it again.
            await runStopped.CancelAsync();
            await flushing;
            await FlushAsync(runId, owner, pending, tally, chat, final: null, null, null);
            throw;
        }
        finally
        {
            await runStopped.CancelAsync();
            await flushing;
        }

        stoppingToken.ThrowIfCancellationRequested();
        var status = errorCode is null ? RunStatus.Completed : RunStatus.Failed;
        await FlushAsync(runId, owner, pending, tally, chat, final: status, errorCode, errorMessage);
        LogFinished(logger, runId, status, errorCode);
    }

    /// <summary>The item's output row, and its results as built (so the tally need not read back what was just written).</summary>
    private async Task<(EvalOutputItem Item, JsonArray Results)> GradeAsync(EvalRun run, RunDataSource dataSource, JsonNode? itemSchema, IReadOnlyList<Grader> graders, GatewayChatModel chat,
        int index, JsonObject row, CancellationToken cancellationToken)
    {
        var item = row["item"];
        JsonObject? sample = null;
        JsonObject? gradingSample = row["sample"] as JsonObject;
        string? error = ItemSchema.Mismatch(item, itemSchema);
        if (error is null && dataSource.Model is { } model)
        {
            List<PromptMessage> prompt;
            try
            {
                prompt = dataSource.Prompt(item);
            }
            catch (InvalidEvalException ex)
            {
                prompt = [];
                error = ex.Message;
            }

            if (error is null)
            {
                (sample, gradingSample, error) = await SampleAsync(chat, model, prompt, dataSource.Sampling, cancellationToken);
            }
        }

        var results = new JsonArray();
        var status = OutputItemStatus.Pass;
        if (error is not null)
        {
            status = OutputItemStatus.Error;
            sample ??= SampleObject([], dataSource.Model ?? "", dataSource.Sampling);
            sample["error"] = new JsonObject { ["code"] = "sample_error", ["message"] = error };
        }
        else
        {
            var input = new GradingInput(item, gradingSample is null ? null : WithOutputText(gradingSample));
            foreach (var grader in graders)
            {
                GraderResult result;
                try
                {
                    result = await grader.GradeAsync(input, chat, cancellationToken);
                }
                catch (RpcException ex) when (ex.StatusCode is not StatusCode.Cancelled)
                {
                    result = new GraderResult(0, false, new JsonObject { ["error"] = ex.Status.Detail });
                    status = OutputItemStatus.Error;
                }

                if (!result.Passed && status == OutputItemStatus.Pass)
                {
                    status = OutputItemStatus.Fail;
                }

                results.Add(new JsonObject
                {
                    ["name"] = grader.Name,
                    ["type"] = grader.Type,
                    ["score"] = result.Score,
                    ["passed"] = result.Passed,
                    ["sample"] = result.Sample,
                });
            }
        }

        return (new EvalOutputItem
        {
            Id = RandomIds.WithPrefix("outputitem_"),
            RunId = run.Id,
            EvalId = run.EvalId,
            ProjectId = run.ProjectId,
            DatasourceItemId = index,
            Item = (item ?? JsonValue.Create((string?)null))?.ToJsonString() ?? "null",
            Sample = sample?.ToJsonString() ?? (gradingSample is null ? null : BroughtSample(gradingSample).ToJsonString()),
            Results = results.ToJsonString(),
            Status = status,
            CreatedAt = time.GetUtcNow(),
        }, results);
    }

    /// <summary>Samples the model: OpenAI's sample object, what graders see as `sample`, or the error that stopped it.</summary>
    private static async Task<(JsonObject Sample, JsonObject? GradingSample, string? Error)> SampleAsync(
        GatewayChatModel chat, string model, List<PromptMessage> prompt, SamplingParams sampling, CancellationToken cancellationToken)
    {
        // A sample says the seed it was drawn with (OpenAI's sample requires one), so it can be drawn again.
        sampling = sampling with { Seed = sampling.Seed ?? Random.Shared.NextInt64(0, int.MaxValue) };
        var sample = SampleObject(prompt, model, sampling);
        try
        {
            var reply = await chat.CompleteAsync(model, prompt, sampling, cancellationToken);
            sample["output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = reply.Content });
            sample["finish_reason"] = reply.FinishReason;
            sample["usage"] = Usage(reply.PromptTokens, reply.CompletionTokens);
            var gradingSample = new JsonObject { ["model"] = model, ["output_text"] = reply.Content, ["finish_reason"] = reply.FinishReason };
            return (sample, gradingSample, null);
        }
        catch (RpcException ex) when (ex.StatusCode is not StatusCode.Cancelled)
        {
            // One item's sampling failing (a rate limit, a provider error) is that item's error, not the run's.
            return (sample, null, ex.Status.Detail);
        }
    }

    /// <summary>
    /// OpenAI's sample object with every field its document requires: what was sent, with the sampling settings;
    /// the output, finish reason and usage once drawn (none, and no tokens, before or without a draw).
    /// </summary>
    private static JsonObject SampleObject(IReadOnlyList<PromptMessage> prompt, string model, SamplingParams sampling) => new()
    {
        ["input"] = new JsonArray([.. prompt.Select(message => (JsonNode)new JsonObject { ["role"] = message.Role, ["content"] = message.Content })]),
        ["output"] = new JsonArray(),
        ["finish_reason"] = "",
        ["model"] = model,
        ["usage"] = Usage(0, 0),
        ["error"] = null,
        ["temperature"] = sampling.Temperature ?? 1,
        ["max_completion_tokens"] = sampling.MaxCompletionTokens ?? GatewayChatModel.DefaultMaxTokens,
        ["top_p"] = sampling.TopP ?? 1,
        ["seed"] = sampling.Seed ?? 0,
    };

    /// <summary>
    /// The sample an item brought (a jsonl item's, or a stored completion's; nothing was sent to a model now) in
    /// OpenAI's sample shape: every field it brings as it brought it (a stored completion's input, output, usage and
    /// sampling settings), its text as the output when it has only output_text, and what it lacks at the values of
    /// no draw (no input, no tokens, finish reason stop).
    /// </summary>
    private static JsonObject BroughtSample(JsonObject brought)
    {
        var view = WithOutputText(brought);
        // Nothing was drawn: no completion tokens were allowed, and the seed is the default's.
        var sample = SampleObject([], view["model"]?.GetValueKind() == JsonValueKind.String ? view["model"]!.GetValue<string>() : "", SamplingParams.Default with { MaxCompletionTokens = 0 });
        if (view["output_text"]?.GetValueKind() == JsonValueKind.String)
        {
            sample["output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = view["output_text"]!.GetValue<string>() });
        }

        sample["finish_reason"] = view["finish_reason"]?.GetValueKind() == JsonValueKind.String ? view["finish_reason"]!.GetValue<string>() : "stop";
        foreach (var (name, value) in brought)
        {
            if (value is not null || !sample.ContainsKey(name))
            {
                sample[name] = value?.DeepClone();
            }
        }

        return sample;
    }

    /// <summary>OpenAI's usage object of a sample (and of a model grader's calls).</summary>
    internal static JsonObject Usage(long promptTokens, long completionTokens) => new()
    {
        ["prompt_tokens"] = promptTokens,
        ["completion_tokens"] = completionTokens,
        ["total_tokens"] = promptTokens + completionTokens,
        ["cached_tokens"] = 0,
    };

    /// <summary>`sample.output_text` (from the choices of a jsonl sample that has none) and `sample.output_json` when the text is JSON.</summary>
    internal static JsonObject WithOutputText(JsonObject sample)
    {
        var view = (JsonObject)sample.DeepClone();
        if (view["output_text"] is null && view["choices"]?[0]?["message"]?["content"] is { } content)
        {
            view["output_text"] = content.DeepClone();
        }

        // OpenAI's sample shape (a stored completion's answer): the assistant's text is in `output`.
        if (view["output_text"] is null && view["output"] is JsonArray { Count: > 0 } output && output[^1]?["content"] is JsonValue outputText
            && outputText.GetValueKind() == JsonValueKind.String)
        {
            view["output_text"] = outputText.DeepClone();
        }

        if (view["output_json"] is null && view["output_text"]?.GetValueKind() == JsonValueKind.String)
        {
            try
            {
                view["output_json"] = JsonNode.Parse(view["output_text"]!.GetValue<string>());
            }
            catch (JsonException)
            {
                // Not JSON: graders see only output_text.
            }
        }

        return view;
    }

    private async Task FlushPeriodicallyAsync(string runId, string owner, List<EvalOutputItem> pending, RunTally tally, GatewayChatModel chat, CancellationTokenSource runStopped)
    {
        using var timer = new PeriodicTimer(options.Value.FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(runStopped.Token))
            {
                if (!await FlushAsync(runId, owner, pending, tally, chat, final: null, null, null))
                {
                    await runStopped.CancelAsync();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Writes the graded items and the run's counts in one transaction, renewing the lease; false when the run is no
    /// longer in progress under this executor (nothing is written then).
    /// </summary>
    private async Task<bool> FlushAsync(string runId, string owner, List<EvalOutputItem> pending, RunTally tally, GatewayChatModel chat,
        string? final, string? errorCode, string? errorMessage)
    {
        List<EvalOutputItem> batch;
        lock (pending)
        {
            batch = [.. pending];
            pending.Clear();
        }

        // Its own context: the periodic flush and the final one never share the run's reading context.
        await using var scope = scopes.CreateAsyncScope();
        var flushDb = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
        await using var transaction = await flushDb.Database.BeginTransactionAsync();
        // Locked until commit: a cancellation waits for this write and then finds the run as it left it.
        var run = await flushDb.Runs.FromSql($"SELECT * FROM eval_runs WHERE \"Id\" = {runId} FOR UPDATE").SingleOrDefaultAsync();
        if (run is null || run.LeaseOwner != owner || run.Status != RunStatus.InProgress)
        {
            return false;
        }

        var now = time.GetUtcNow();
        flushDb.OutputItems.AddRange(batch);
        tally.WriteTo(run);
        run.PerModelUsage = new JsonArray([.. chat.Usage.Select(usage => (JsonNode)new JsonObject
        {
            ["model_name"] = usage.Model,
            ["invocation_count"] = usage.Usage.Invocations,
            ["prompt_tokens"] = usage.Usage.PromptTokens,
            ["completion_tokens"] = usage.Usage.CompletionTokens,
        })]).ToJsonString();
        run.LeaseUntil = now + options.Value.Lease;
        if (final is not null)
        {
            run.Status = final;
            run.FinishedAt = now;
            run.ErrorCode = errorCode;
            run.ErrorMessage = errorMessage;
            run.LeaseOwner = null;
            run.LeaseUntil = null;
        }

        await flushDb.SaveChangesAsync();
        await transaction.CommitAsync();
        return true;
    }

    [LoggerMessage(LogLevel.Information, "Eval run {RunId} finished: {Status} {ErrorCode}")]
    private static partial void LogFinished(ILogger logger, string runId, string status, string? errorCode);
}
