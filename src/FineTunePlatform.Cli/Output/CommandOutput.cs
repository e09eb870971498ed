using System.CommandLine;
using System.Text.Json;
using FineTunePlatform.Cli.Commands;

namespace FineTunePlatform.Cli.Output;

/// <summary>
/// Where a command's results go: text for people on stdout, or with `--json` the platform's own objects (one JSON
/// document per line) for scripts; and whether stdout and stderr are terminals, so that live views and progress bars
/// appear only where someone watches them and never in a pipe, a file or a test.
/// </summary>
public sealed class CommandOutput(TextWriter text, TextWriter error, TerminalInfo terminal)
{
    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print the platform's JSON objects (one per line) instead of text, for scripts.",
        Recursive = true,
    };

    public TextWriter Text { get; } = text;

    public TextWriter Error { get; } = error;

    public TerminalInfo Terminal { get; } = terminal;

    public bool IsJson(ParseResult parse) => parse.GetValue(Json);

    /// <summary>The object as one line of JSON with `--json`, else the command's text for it.</summary>
    public async Task ShowAsync(ParseResult parse, JsonElement value, Func<TextWriter, Task> asText)
    {
        if (IsJson(parse))
        {
            await WriteJsonAsync(value);
        }
        else
        {
            await asText(Text);
        }
    }

    /// <summary>A list page: with `--json` the page object itself, else its `data` as a table.</summary>
    public Task ShowTableAsync(ParseResult parse, JsonElement page, IReadOnlyList<string> header, Func<JsonElement, string[]> row) =>
        ShowAsync(parse, page, text => Table.WriteAsync(text, header, page.GetProperty("data").EnumerateArray().Select(row).ToList()));

    /// <summary>One JSON document on one line, whatever the platform's indentation was.</summary>
    public Task WriteJsonAsync(JsonElement value) => Text.WriteLineAsync(JsonSerializer.Serialize(value));

    public Task WriteLineAsync(string? line) => Text.WriteLineAsync(line);

    public Task WriteLineAsync() => Text.WriteLineAsync();

    public Task WriteAsync(string? text) => Text.WriteAsync(text);
}

/// <summary>Whether stdout and stderr are terminals (the console's, or none when ftune runs in a test).</summary>
public sealed record TerminalInfo(bool OutputIsTerminal, bool ErrorIsTerminal)
{
    public static TerminalInfo None { get; } = new(false, false);

    /// <summary>A redirected stream is no terminal, and neither is one whose TERM says it cannot move the cursor.</summary>
    public static TerminalInfo OfConsole()
    {
        var capable = Environment.GetEnvironmentVariable("TERM") != "dumb";
        return new(capable && !Console.IsOutputRedirected, capable && !Console.IsErrorRedirected);
    }

    /// <summary>Columns to draw in (a line never wraps, or redrawing in place would leave its tail behind).</summary>
    public static int Width => Console.IsOutputRedirected || Console.WindowWidth <= 0 ? 80 : Console.WindowWidth;
}
