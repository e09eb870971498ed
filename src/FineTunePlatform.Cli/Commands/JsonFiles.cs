using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.Cli.Commands;

/// <summary>JSON files given on the command line (an eval's definition, a run's data source).</summary>
public static class JsonFiles
{
    /// <summary>The file's JSON object; a missing file or malformed JSON is a usage mistake naming the option and where.</summary>
    public static async Task<JsonObject> ReadObjectAsync(FileInfo file, string option, CancellationToken cancellationToken)
    {
        if (!file.Exists)
        {
            throw new CliException($"{option}: no such file: {file.FullName}", 2);
        }

        try
        {
            return JsonNode.Parse(await File.ReadAllTextAsync(file.FullName, cancellationToken)) as JsonObject
                ?? throw new CliException($"{option}: {file.Name} must hold one JSON object.", 2);
        }
        catch (JsonException ex)
        {
            // System.Text.Json's message names the position as "LineNumber: 2 | BytePositionInLine: 5."; say it plainly.
            var at = ex.LineNumber is { } line ? $" at line {line + 1}, column {(ex.BytePositionInLine ?? 0) + 1}" : "";
            throw new CliException($"{option}: {file.Name} is not valid JSON{at}.", 2);
        }
    }

    /// <summary>
    /// `--eval-file file-...`: the data source's items come from that uploaded evals file, so a data source kept in a
    /// file (examples/ticket-eval-source.json) needs no file id written into it.
    /// </summary>
    public static void UseItemsFile(JsonObject dataSource, string? fileId)
    {
        if (fileId is not null)
        {
            dataSource["source"] = new JsonObject { ["type"] = "file_id", ["id"] = fileId };
        }
    }
}
