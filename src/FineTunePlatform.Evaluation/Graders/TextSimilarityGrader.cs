namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// OpenAI's text_similarity: a similarity in [0, 1] between the rendered `input` and `reference`, passing at
/// `pass_threshold`. Metrics: fuzzy_match, bleu, gleu, rouge_1 … rouge_5, rouge_l (see <see cref="TextSimilarity"/>).
/// cosine (needs an embeddings model) and meteor (needs WordNet) are refused when the eval is created.
/// </summary>
public sealed class TextSimilarityGrader(string name, string input, string reference, string metric, double passThreshold) : Grader(name, "text_similarity")
{
    public static readonly string[] Metrics = ["fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"];

    public override ValueTask<GraderResult> GradeAsync(GradingInput item, IChatModel judge, CancellationToken cancellationToken)
    {
        var score = TextSimilarity.Score(metric, ItemTemplate.Render(input, item), ItemTemplate.Render(reference, item));
        return ValueTask.FromResult(new GraderResult(score, score >= passThreshold));
    }
}
