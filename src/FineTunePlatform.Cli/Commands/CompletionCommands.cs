using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune completions list|export`: the project's stored chat completions (chats sent with `store: true`, e.g.
/// `ftune chat --store`), and our export of them as a fine-tuning file, the way from production traffic to the next
/// training set.
/// </summary>
public static class CompletionCommands
{
    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var model = new Option<string?>("--model") { Description = "Only completions of this model." };
        var metadata = MetadataOption("Only completions with this metadata pair (key=value; repeat for more).");
        var limit = new Option<int?>("--limit") { Description = "At most this many (list: one page, up to 100)." };
        var list = new Command("list", "List stored chat completions, newest first.") { model, metadata, limit };
        list.SetAction(async (parse, cancellationToken) =>
        {
            var query = new List<string> { "order=desc" };
            if (parse.GetValue(model) is { } modelId)
            {
                query.Add($"model={Uri.EscapeDataString(modelId)}");
            }

            query.AddRange(Pairs(parse.GetValue(metadata)).Select(pair => $"metadata[{Uri.EscapeDataString(pair.Key)}]={Uri.EscapeDataString(pair.Value)}"));
            if (parse.GetValue(limit) is { } count)
            {
                query.Add($"limit={count}");
            }

            // Plain HTTP: the SDK's stored-completion calls are marked experimental and page past what one screen needs.
            var page = await connection.Open(parse).GetAsync($"chat/completions?{string.Join('&', query)}", cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "MODEL", "CREATED", "METADATA", "ANSWER"], completion =>
            [
                Table.Text(completion, "id"),
                Table.Text(completion, "model"),
                Table.Time(completion, "created"),
                completion.TryGetProperty("metadata", out var pairs) && pairs.ValueKind == JsonValueKind.Object
                    ? string.Join(',', pairs.EnumerateObject().Select(pair => $"{pair.Name}={pair.Value.GetString()}")) is { Length: > 0 } text ? text : "-"
                    : "-",
                Answer(completion),
            ]);
            return 0;
        });

        var exportModel = new Option<string?>("--model") { Description = "Only completions of this model." };
        var exportMetadata = MetadataOption("Only completions with this metadata pair (key=value; repeat for more).");
        var createdAfter = new Option<long?>("--created-after") { Description = "Only completions created after this unix time." };
        var createdBefore = new Option<long?>("--created-before") { Description = "Only completions created before this unix time." };
        var exportLimit = new Option<int?>("--limit") { Description = "At most this many completions (oldest first)." };
        var filename = new Option<string?>("--filename") { Description = "The file's name (default: stored-completions-<time>.jsonl)." };
        var export = new Command("export", "Write the selected stored completions as a chat fine-tuning file and show its validation.")
        {
            exportModel, exportMetadata, createdAfter, createdBefore, exportLimit, filename,
        };
        export.SetAction(async (parse, cancellationToken) =>
        {
            var platform = connection.Open(parse);
            var body = new Dictionary<string, object?>
            {
                ["model"] = parse.GetValue(exportModel),
                ["metadata"] = Pairs(parse.GetValue(exportMetadata)) is { Count: > 0 } pairs ? pairs : null,
                ["created_after"] = parse.GetValue(createdAfter),
                ["created_before"] = parse.GetValue(createdBefore),
                ["limit"] = parse.GetValue(exportLimit),
                ["filename"] = parse.GetValue(filename),
            };
            var file = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, "chat/completions/export")
            {
                Content = JsonContent.Create(body.Where(pair => pair.Value is not null).ToDictionary()),
            }, cancellationToken);
            await output.ShowAsync(parse, file, text => text.WriteLineAsync($"{Table.Text(file, "id")}  {Table.Text(file, "filename")}  {Table.Text(file, "bytes")} bytes  {Table.Text(file, "status")}"));
            return Table.Text(file, "status") == "processed" ? 0 : 1;
        });

        return new Command("completions", "Stored chat completions (chats sent with --store).") { list, export };
    }

    /// <summary>`--metadata key=value`, repeatable (also used by `ftune chat --store`).</summary>
    public static Option<string[]> MetadataOption(string description) => new("--metadata")
    {
        Description = description,
        AllowMultipleArgumentsPerToken = false,
        Arity = ArgumentArity.ZeroOrMore,
    };

    public static Dictionary<string, string> Pairs(string[]? values)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var value in values ?? [])
        {
            var equals = value.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new CliException($"--metadata '{value}' is not key=value.", 2);
            }

            pairs[value[..equals]] = value[(equals + 1)..];
        }

        return pairs;
    }

    /// <summary>The first choice's text on one line, shortened.</summary>
    private static string Answer(JsonElement completion)
    {
        var text = completion.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
            && choices[0].GetProperty("message").TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
            ? content.GetString()!.ReplaceLineEndings(" ")
            : "-";
        return text.Length > 60 ? text[..60] + "…" : text;
    }
}
