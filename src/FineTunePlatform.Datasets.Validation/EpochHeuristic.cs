namespace FineTunePlatform.Datasets.Validation;

/// <summary>
/// OpenAI's default number of epochs: aim for 3, but make small datasets reach 100 examples seen and cap large ones
/// at 25,000, always between 1 and 25 epochs.
/// </summary>
public static class EpochHeuristic
{
    public const int TargetEpochs = 3;
    public const int MinTargetExamples = 100;
    public const int MaxTargetExamples = 25_000;
    public const int MinEpochs = 1;
    public const int MaxEpochs = 25;

    public static int RecommendedEpochs(long exampleCount)
    {
        if (exampleCount <= 0)
        {
            return TargetEpochs;
        }

        if (exampleCount * TargetEpochs < MinTargetExamples)
        {
            return (int)Math.Min(MaxEpochs, MinTargetExamples / exampleCount);
        }

        if (exampleCount * TargetEpochs > MaxTargetExamples)
        {
            return (int)Math.Max(MinEpochs, MaxTargetExamples / exampleCount);
        }

        return TargetEpochs;
    }
}
