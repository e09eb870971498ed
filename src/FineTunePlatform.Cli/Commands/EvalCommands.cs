using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune evals create|list|get` and `ftune evals runs create|list|get`: OpenAI's Evals API. An eval says what items
/// look like and how answers are graded; a run samples a model on every item and grades the answers.
/// </summary>
public static class EvalCommands
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var definition = new Argument<FileInfo>("definition") { Description = "JSON file: {\"name\", \"data_source_config\", \"testing_criteria\"} as OpenAI's POST /v1/evals takes." };
        var name = new Option<string?>("--name") { Description = "The eval's name (default: the file's)." };
        var create = new Command("create", "Create an eval from a JSON definition.") { definition, name };
        create.SetAction(async (parse, cancellationToken) =>
        {
            var body = await JsonFiles.ReadObjectAsync(parse.GetValue(definition)!, "definition", cancellationToken);
            if (parse.GetValue(name) is { } given)
            {
                body["name"] = given;
            }

            var eval = await connection.Open(parse).SendAsync(new HttpRequestMessage(HttpMethod.Post, "evals") { Content = JsonContent.Create(body) }, cancellationToken);
            await output.ShowAsync(parse, eval, text => WriteEvalAsync(text, eval));
            return 0;
        });

        var limit = new Option<int>("--limit") { DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List the project's evals, newest first.") { limit };
        list.SetAction(async (parse, cancellationToken) =>
        {
            var page = await connection.Open(parse).GetAsync($"evals?limit={parse.GetValue(limit)}", cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "CREATED", "CRITERIA", "NAME"],
                eval => [Table.Text(eval, "id"), Table.Time(eval, "created_at"), Criteria(eval).ToString(CultureInfo.InvariantCulture), Table.Text(eval, "name")]);
            return 0;
        });

        var evalId = new Argument<string>("eval-id");
        var get = new Command("get", "Show an eval and its graders.") { evalId };
        get.SetAction(async (parse, cancellationToken) =>
        {
            var eval = await connection.Open(parse).GetAsync(EvalPath(parse.GetValue(evalId)!), cancellationToken);
            await output.ShowAsync(parse, eval, text => WriteEvalAsync(text, eval));
            return 0;
        });

        return new Command("evals", "Evals and their runs.") { create, list, get, Runs(connection, output) };
    }

    private static Command Runs(ConnectionOptions connection, CommandOutput output)
    {
        var evalId = new Argument<string>("eval-id");
        var model = new Option<string?>("--model") { Description = "The model to sample (sets data_source.model)." };
        var dataSource = new Option<FileInfo>("--data-source") { Description = "JSON file: the run's data source (completions: input_messages, sampling_params, source).", Required = true };
        var itemsFile = new Option<string?>("--eval-file") { Description = "An uploaded evals file (purpose evals) with the items: sets data_source.source to it." };
        var name = new Option<string?>("--name");
        var watch = new Option<bool>("--watch") { Description = "Wait until the run ends and show its result; exit 0 only if it completed." };
        var create = new Command("create", "Start a run of an eval.") { evalId, model, dataSource, itemsFile, name, watch };
        create.SetAction(async (parse, cancellationToken) =>
        {
            var source = await JsonFiles.ReadObjectAsync(parse.GetValue(dataSource)!, "--data-source", cancellationToken);
            JsonFiles.UseItemsFile(source, parse.GetValue(itemsFile));
            if (parse.GetValue(model) is { } sampled)
            {
                source["model"] = sampled;
            }

            var body = new JsonObject { ["data_source"] = source };
            if (parse.GetValue(name) is { } given)
            {
                body["name"] = given;
            }

            var platform = connection.Open(parse);
            var run = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, EvalPath(parse.GetValue(evalId)!) + "/runs") { Content = JsonContent.Create(body) }, cancellationToken);
            await output.ShowAsync(parse, run, text => WriteRunAsync(text, run));
            if (!parse.GetValue(watch))
            {
                return 0;
            }

            var runPath = RunPath(parse.GetValue(evalId)!, run.GetProperty("id").GetString()!);
            while (Table.Text(run, "status") is "queued" or "in_progress")
            {
                await Task.Delay(PollInterval, cancellationToken);
                run = await platform.GetAsync(runPath, cancellationToken);
            }

            var ended = run;
            await output.ShowAsync(parse, ended, text => WriteRunAsync(text, ended));
            return Table.Text(run, "status") == "completed" ? 0 : 1;
        });

        var limit = new Option<int>("--limit") { DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List an eval's runs.") { evalId, limit };
        list.SetAction(async (parse, cancellationToken) =>
        {
            var page = await connection.Open(parse).GetAsync($"{EvalPath(parse.GetValue(evalId)!)}/runs?limit={parse.GetValue(limit)}", cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "STATUS", "PASSED", "MODEL", "NAME"],
                run => [Table.Text(run, "id"), Table.Text(run, "status"), Counts(run), Table.Text(run, "model"), Table.Text(run, "name")]);
            return 0;
        });

        var runId = new Argument<string>("run-id");
        var get = new Command("get", "Show a run: its status and how many items passed.") { evalId, runId };
        get.SetAction(async (parse, cancellationToken) =>
        {
            var run = await connection.Open(parse).GetAsync(RunPath(parse.GetValue(evalId)!, parse.GetValue(runId)!), cancellationToken);
            await output.ShowAsync(parse, run, text => WriteRunAsync(text, run));
            return 0;
        });

        return new Command("runs", "Runs of an eval.") { create, list, get };
    }

    private static string EvalPath(string evalId) => $"evals/{Uri.EscapeDataString(evalId)}";

    private static string RunPath(string evalId, string runId) => $"{EvalPath(evalId)}/runs/{Uri.EscapeDataString(runId)}";

    private static int Criteria(JsonElement eval) =>
        eval.TryGetProperty("testing_criteria", out var criteria) && criteria.ValueKind == JsonValueKind.Array ? criteria.GetArrayLength() : 0;

    /// <summary>"passed/total" from OpenAI's result_counts, or "-" before any item is graded.</summary>
    private static string Counts(JsonElement run)
    {
        if (!run.TryGetProperty("result_counts", out var counts) || counts.ValueKind != JsonValueKind.Object)
        {
            return "-";
        }

        var total = counts.TryGetProperty("total", out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;
        var passed = counts.TryGetProperty("passed", out value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;
        return total == 0 ? "-" : $"{passed}/{total}";
    }

    private static async Task WriteEvalAsync(TextWriter output, JsonElement eval)
    {
        await output.WriteLineAsync($"{Table.Text(eval, "id")}  {Table.Text(eval, "name")}  {Criteria(eval)} testing criteria");
        if (eval.TryGetProperty("testing_criteria", out var criteria) && criteria.ValueKind == JsonValueKind.Array)
        {
            foreach (var criterion in criteria.EnumerateArray())
            {
                await output.WriteLineAsync($"  {Table.Text(criterion, "name")}: {Table.Text(criterion, "type")}");
            }
        }
    }

    private static async Task WriteRunAsync(TextWriter output, JsonElement run)
    {
        await output.WriteLineAsync($"{Table.Text(run, "id")}  {Table.Text(run, "status")}  {Table.Text(run, "model")}  passed {Counts(run)}");
        if (run.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object && Table.Text(error, "message") is { } message && message != "-")
        {
            await output.WriteLineAsync($"  error: {message} ({Table.Text(error, "code")})");
        }
    }
}
