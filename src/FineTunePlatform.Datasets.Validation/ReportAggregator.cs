using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Datasets.Validation;

/// <summary>
/// Collects per-line results arriving from parallel workers in any order, and turns them into the report: all
/// errors counted, the lowest-numbered ones listed per category, the file's format decided by its first valid example.
/// </summary>
internal sealed class ReportAggregator(int maxListedPerCategory)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _errorCounts = [];
    private readonly Dictionary<string, SortedSet<LineError>> _listed = [];
    private readonly Dictionary<string, FormatSeen> _formats = [];
    private readonly List<int> _messages = [];
    private readonly List<int> _totalTokens = [];
    private readonly List<int> _assistantTokens = [];
    private readonly FitTotals[] _fits = ModelPresets.All.Select(_ => new FitTotals()).ToArray();
    private long _missingSystem;
    private long _missingUser;
    private long _overLimit;

    private sealed class FitTotals
    {
        public long Examples { get; set; }

        public long Truncated { get; set; }

        public long WithoutLearnedTokens { get; set; }

        public SortedSet<long> Lines { get; } = [];

        public long Tokens { get; set; }
    }

    private sealed class FormatSeen
    {
        public long Count { get; set; }

        public long FirstLine { get; set; } = long.MaxValue;

        public SortedSet<long> Lines { get; } = [];
    }

    private static readonly Comparer<LineError> ByLine = Comparer<LineError>.Create((a, b) =>
        a.Line != b.Line ? a.Line.CompareTo(b.Line) : string.CompareOrdinal(a.Path, b.Path));

    public void AddError(LineError error)
    {
        lock (_gate)
        {
            AddErrorLocked(error);
        }
    }

    public void Add(List<(long Line, ExampleResult Result)> results)
    {
        lock (_gate)
        {
            foreach (var (line, result) in results)
            {
                foreach (var error in result.Errors)
                {
                    AddErrorLocked(error);
                    if (error.Category == ValidationCategories.ExampleTooLong)
                    {
                        _overLimit++;
                    }
                }

                if (result.Format is null || result.Errors.Any(error => error.Category != ValidationCategories.ExampleTooLong))
                {
                    continue;
                }

                if (!_formats.TryGetValue(result.Format, out var seen))
                {
                    _formats[result.Format] = seen = new FormatSeen();
                }

                seen.Count++;
                seen.FirstLine = Math.Min(seen.FirstLine, line);
                seen.Lines.Add(line);
                if (seen.Lines.Count > maxListedPerCategory)
                {
                    seen.Lines.Remove(seen.Lines.Max);
                }

                _messages.Add(result.MessageCount);
                _totalTokens.Add(result.TotalTokens);
                _assistantTokens.Add(result.AssistantTokens);
                _missingSystem += result.MissingSystem ? 1 : 0;
                _missingUser += result.MissingUser ? 1 : 0;
                for (var i = 0; result.ModelFits is not null && i < _fits.Length; i++)
                {
                    var fit = result.ModelFits[i];
                    var totals = _fits[i];
                    totals.Examples++;
                    totals.Tokens += Math.Min(fit.Tokens, ModelPresets.All[i].ContextLength + 1);
                    totals.Truncated += fit.Truncated ? 1 : 0;
                    if (fit.NothingToLearn)
                    {
                        totals.WithoutLearnedTokens++;
                        totals.Lines.Add(line);
                        if (totals.Lines.Count > maxListedPerCategory)
                        {
                            totals.Lines.Remove(totals.Lines.Max);
                        }
                    }
                }
            }
        }
    }

    public DatasetReport Build(long bytes, long lineCount, int minExamples, int maxTokensPerExample)
    {
        lock (_gate)
        {
            var format = _formats.OrderBy(pair => pair.Value.FirstLine).Select(pair => pair.Key).FirstOrDefault();
            foreach (var (other, seen) in _formats.Where(pair => pair.Key != format))
            {
                foreach (var line in seen.Lines)
                {
                    AddErrorLocked(new LineError(ValidationCategories.MixedFormats, line, "$",
                        $"This example is in the {other} format but the file's first example is {format}; a file holds one format."));
                }

                // Count every mixed example, not only the listed ones.
                _errorCounts[ValidationCategories.MixedFormats] += seen.Count - seen.Lines.Count;
            }

            var examples = format is null ? 0 : _formats[format].Count;
            if (bytes == 0)
            {
                AddErrorLocked(new LineError(ValidationCategories.EmptyFile, 0, "$", "The file is empty."));
            }
            else if (examples < minExamples)
            {
                AddErrorLocked(new LineError(ValidationCategories.TooFewExamples, 0, "$",
                    $"The file has {examples} valid examples; fine-tuning needs at least {minExamples}."));
            }

            var billablePerEpoch = _totalTokens.Sum(tokens => (long)Math.Min(tokens, maxTokensPerExample));
            return new DatasetReport
            {
                IsValid = _errorCounts.Count == 0,
                Format = format,
                ExampleCount = examples,
                LineCount = lineCount,
                ErrorCounts = new Dictionary<string, long>(_errorCounts),
                Errors = _listed.Values.SelectMany(set => set).OrderBy(error => error.Line).ThenBy(error => error.Category, StringComparer.Ordinal).ToList(),
                MessagesPerExample = DistributionSummary.Of(_messages),
                TotalTokensPerExample = DistributionSummary.Of(_totalTokens),
                AssistantTokensPerExample = DistributionSummary.Of(_assistantTokens),
                ExamplesMissingSystem = _missingSystem,
                ExamplesMissingUser = _missingUser,
                ExamplesOverTokenLimit = _overLimit,
                TotalTokens = _totalTokens.Sum(tokens => (long)tokens),
                BillableTokensPerEpoch = billablePerEpoch,
                RecommendedEpochs = EpochHeuristic.RecommendedEpochs(examples),
                ModelFits = format == DatasetFormats.Chat
                    ? ModelPresets.All.Select((preset, i) => new ModelFitReport(preset.Name, preset.Tokenizer.Name, preset.ContextLength, _fits[i].Examples,
                        _fits[i].Truncated, _fits[i].WithoutLearnedTokens, [.. _fits[i].Lines], _fits[i].Tokens)).ToList()
                    : null,
            };
        }
    }

    private void AddErrorLocked(LineError error)
    {
        _errorCounts[error.Category] = _errorCounts.GetValueOrDefault(error.Category) + 1;
        if (!_listed.TryGetValue(error.Category, out var listed))
        {
            _listed[error.Category] = listed = new SortedSet<LineError>(ByLine);
        }

        listed.Add(error);
        if (listed.Count > maxListedPerCategory)
        {
            listed.Remove(listed.Max!);
        }
    }
}
