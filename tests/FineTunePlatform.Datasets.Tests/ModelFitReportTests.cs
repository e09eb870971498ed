using System.Text;
using System.Text.Json;
using FineTunePlatform.Datasets.Validation;

namespace FineTunePlatform.Datasets.Tests;

/// <summary>The report says how a chat file fits each built-in preset's context, counted with the preset's tokenizer.</summary>
public sealed class ModelFitReportTests
{
    [Fact]
    public async Task Examples_longer_than_a_context_and_examples_with_nothing_to_learn_are_counted_per_preset_with_their_lines()
    {
        var longSystem = string.Join(' ', Enumerable.Range(0, 250).Select(i => $"rule{i % 7}"));
        var lines = new List<string>();
        for (var i = 1; i <= 12; i++)
        {
            object[] messages = i switch
            {
                // ~700 BPE tokens: over local-nano's 512, under local-small's 1,024.
                3 or 6 => [new { role = "system", content = longSystem }, new { role = "user", content = "hi" }, new { role = "assistant", content = "billing" }],
                // Nothing to learn on any model: the only answer has weight 0.
                9 => [new { role = "user", content = "hi" }, new { role = "assistant", content = "skip", weight = 0 }],
                _ => [new { role = "user", content = $"ticket {i}" }, new { role = "assistant", content = "billing" }],
            };
            lines.Add(JsonSerializer.Serialize(new { messages }));
        }

        var validator = new DatasetValidator(new ValidationOptions(), baseModel: null, TokenCounter.Shared);
        await validator.AppendAsync(Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"), CancellationToken.None);
        var report = await validator.CompleteAsync(CancellationToken.None);

        Assert.True(report.IsValid);
        var nano = report.ModelFits!.Single(fit => fit.Model == "local-nano");
        var small = report.ModelFits!.Single(fit => fit.Model == "local-small");
        Assert.Equal((512, 12L, 2L, 1L), (nano.ContextTokens, nano.Examples, nano.ExamplesTruncated, nano.ExamplesWithoutLearnedTokens));
        Assert.Equal([9L], nano.LinesWithoutLearnedTokens);
        Assert.Equal((1024, 0L, 1L), (small.ContextTokens, small.ExamplesTruncated, small.ExamplesWithoutLearnedTokens));
        Assert.Equal("2 of 12 examples are longer than local-nano's context of 512 tokens; their beginning is cut in training; 1 examples have no assistant token left to learn and are skipped (lines 9).", nano.Message);
        Assert.False(nano.NothingToLearn);
        // Tokens per epoch as fitted: the two long examples count 513 tokens each on local-nano, all of theirs on local-small.
        Assert.True(small.TokensPerEpoch - nano.TokensPerEpoch > 300, $"{small.TokensPerEpoch} vs {nano.TokensPerEpoch}");
    }

    [Fact]
    public async Task A_preference_file_has_no_model_fits()
    {
        var line = JsonSerializer.Serialize(new
        {
            input = new { messages = new[] { new { role = "user", content = "hi" } } },
            preferred_output = new[] { new { role = "assistant", content = "Hello!" } },
            non_preferred_output = new[] { new { role = "assistant", content = "go away" } },
        });
        var validator = new DatasetValidator(new ValidationOptions(), baseModel: null, TokenCounter.Shared);
        await validator.AppendAsync(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(line + "\n", 10))), CancellationToken.None);
        var report = await validator.CompleteAsync(CancellationToken.None);

        Assert.Equal("preference", report.Format);
        Assert.Null(report.ModelFits);
    }
}
