using FineTunePlatform.Evaluation.Graders;

namespace FineTunePlatform.Evaluation.Tests;

/// <summary>The text_similarity metrics against values worked out by hand.</summary>
public sealed class TextSimilarityTests
{
    private const string Reference = "The cat sat on the mat.";

    [Theory]
    [InlineData("fuzzy_match")]
    [InlineData("bleu")]
    [InlineData("gleu")]
    [InlineData("rouge_1")]
    [InlineData("rouge_2")]
    [InlineData("rouge_5")]
    [InlineData("rouge_l")]
    public void Identical_texts_score_one_and_unrelated_texts_zero(string metric)
    {
        Assert.Equal(1, TextSimilarity.Score(metric, Reference, Reference), 9);
        Assert.Equal(1, TextSimilarity.Score(metric, "", ""), 9);
        Assert.Equal(0, TextSimilarity.Score(metric, "xyz qqq", "bbb"), 9);
    }

    [Fact]
    public void A_prefix_of_the_reference_scores_as_worked_out()
    {
        const string candidate = "the cat sat";

        // 3 of 6 reference words: precision 1, recall 1/2.
        Assert.Equal(2.0 / 3, TextSimilarity.Score("rouge_1", candidate, Reference), 9);
        Assert.Equal(2.0 / 3, TextSimilarity.Score("rouge_l", candidate, Reference), 9);
        // Bigrams: 2 of the candidate's 2, of the reference's 5.
        Assert.Equal(2 * (1 * 0.4) / 1.4, TextSimilarity.Score("rouge_2", candidate, Reference), 9);
        // 1–4-grams: 6 matches over max(6 candidate, 18 reference).
        Assert.Equal(6.0 / 18, TextSimilarity.Score("gleu", candidate, Reference), 9);
        // Up to trigrams (the candidate has 3 words), all precise; brevity penalty exp(1 - 6/3).
        Assert.Equal(Math.Exp(-1), TextSimilarity.Score("bleu", candidate, Reference), 9);
    }

    [Fact]
    public void Fuzzy_match_is_the_indel_ratio_over_characters()
    {
        Assert.Equal(2.0 * 6 / 13, TextSimilarity.FuzzyMatch("suport", "support"), 9);
        Assert.Equal(2.0 * 2 / 8, TextSimilarity.FuzzyMatch("abcd", "axbx"), 9);
    }

    [Fact]
    public void Words_are_lower_cased_runs_of_letters_and_digits()
    {
        Assert.Equal(["héllo", "world", "42"], TextSimilarity.Words("Héllo, WORLD!! 42"));
    }
}
