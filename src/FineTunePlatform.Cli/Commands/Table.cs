using System.Globalization;
using System.Text.Json;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// Rows printed as aligned columns under a header, or "(empty)" when there are none, so that a list with nothing in
/// it still says so. The first column is always an id, so `awk '{print $1}'` picks ids out of any list.
/// </summary>
public static class Table
{
    public static async Task WriteAsync(TextWriter output, IReadOnlyList<string> header, IReadOnlyList<string[]> rows)
    {
        if (rows.Count == 0)
        {
            await output.WriteLineAsync("(empty)");
            return;
        }

        var widths = header.Select((title, column) => Math.Max(title.Length, rows.Max(row => row[column].Length))).ToArray();
        await output.WriteLineAsync(Line(header, widths));
        foreach (var row in rows)
        {
            await output.WriteLineAsync(Line(row, widths));
        }
    }

    private static string Line(IReadOnlyList<string> cells, int[] widths) =>
        string.Join("  ", cells.Select((cell, column) => column == cells.Count - 1 ? cell : cell.PadRight(widths[column]))).TrimEnd();

    /// <summary>A string property, or "-" when absent or null.</summary>
    public static string Text(JsonElement item, string name) =>
        item.TryGetProperty(name, out var value) ? value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!,
            JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
            _ => "-",
        } : "-";

    /// <summary>A unix-seconds property as local time without spaces (one awk field), or "-".</summary>
    public static string Time(JsonElement item, string name) =>
        item.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.GetInt64() > 0
            ? DateTimeOffset.FromUnixTimeSeconds(value.GetInt64()).ToLocalTime().ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture)
            : "-";
}
