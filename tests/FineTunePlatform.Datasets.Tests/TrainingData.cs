using System.Text;
using System.Text.Json;

namespace FineTunePlatform.Datasets.Tests;

/// <summary>Generates fine-tuning JSONL for tests: valid chat examples, to be broken line by line.</summary>
internal static class TrainingData
{
    public static string ChatLine(int index) => JsonSerializer.Serialize(new
    {
        messages = new object[]
        {
            new { role = "system", content = "You route support tickets." },
            new { role = "user", content = $"Ticket {index}: my invoice shows the wrong amount." },
            new { role = "assistant", content = "billing" },
        },
    });

    public static string PreferenceLine(int index) => JsonSerializer.Serialize(new
    {
        input = new { messages = new object[] { new { role = "user", content = $"Say hello politely ({index})." } } },
        preferred_output = new object[] { new { role = "assistant", content = "Hello, how can I help?" } },
        non_preferred_output = new object[] { new { role = "assistant", content = "What." } },
    });

    /// <summary>`count` valid chat lines, with `replace` swapping in other text for chosen 1-based lines.</summary>
    public static byte[] Jsonl(int count, IReadOnlyDictionary<int, string>? replace = null, string newline = "\n", Func<int, string>? line = null)
    {
        var builder = new StringBuilder();
        for (var i = 1; i <= count; i++)
        {
            builder.Append(replace is not null && replace.TryGetValue(i, out var text) ? text : (line ?? ChatLine)(i)).Append(newline);
        }

        return Encoding.UTF8.GetBytes(builder.ToString());
    }
}
