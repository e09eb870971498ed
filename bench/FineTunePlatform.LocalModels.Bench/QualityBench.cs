using System.Diagnostics;
using System.Globalization;

namespace FineTunePlatform.LocalModels.Bench;

/// <summary>
/// What a user's first fine-tune gives: for each preset, task, dataset size and seed, a job with every hyperparameter
/// "auto" (the platform's own resolution, <see cref="AutoHyperparameters"/>), then greedy decoding of 100 held-out
/// items whose wording differs from the training items, scored by exact match. Prints one row per preset × task ×
/// size with the accuracy of each seed and the training time.
/// <code>
/// dotnet run -c Release --project bench/FineTunePlatform.LocalModels.Bench -- quality
///     [--presets local-nano,local-small] [--tasks route-4,route-8+system,extract-order,extract-name] [--sizes 40,100,400]
///     [--seeds 3] [--base pretrained|random|bytes|FILE] [--auto platform|openai] [--lr X] [--steps N] [--jitter N]
/// </code>
/// `--base random` trains the same shape from random weights, `bytes` also with the old byte tokenizer (the
/// decision's experiments); `--auto openai` resolves "auto" the way the platform did before (OpenAI's heuristics).
/// </summary>
internal static class QualityBench
{
    private const int HeldOutItems = 100;

    public static void Run(string[] args)
    {
        string Option(string name, string fallback)
        {
            var index = Array.IndexOf(args, $"--{name}");
            return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
        }

        var presets = Option("presets", "local-nano,local-small").Split(',').Select(name => ModelPresets.All.Single(preset => preset.Name == name)).ToList();
        var tasks = Option("tasks", "route-4,route-8+system,extract-order,extract-name").Split(',').Select(TaskNamed).ToList();
        var sizes = Option("sizes", "40,100,400").Split(',').Select(size => int.Parse(size, CultureInfo.InvariantCulture)).ToList();
        var seeds = int.Parse(Option("seeds", "3"), CultureInfo.InvariantCulture);
        var baseKind = Option("base", "pretrained");
        var auto = Option("auto", "platform");
        // Calibration knobs (the experiments behind AutoHyperparameters' constants): a fixed multiplier, a minimum of steps.
        double? rate = Option("lr", "") is { Length: > 0 } lr ? double.Parse(lr, CultureInfo.InvariantCulture) : null;
        int? minimumSteps = Option("steps", "") is { Length: > 0 } steps ? int.Parse(steps, CultureInfo.InvariantCulture) : null;
        int? jitter = Option("jitter", "") is { Length: > 0 } shift ? int.Parse(shift, CultureInfo.InvariantCulture) : null;
        Console.WriteLine($"quality: base {baseKind}, auto {auto}{(rate is null ? "" : $", lr× {rate}")}{(minimumSteps is null ? "" : $", {minimumSteps} steps")}{(jitter is null ? "" : $", position jitter {jitter}")}, {seeds} seeds, {HeldOutItems} held-out items per run, GEMM: {Gemm.Backend}");
        Console.WriteLine("| preset | task | examples | held-out exact match (per seed) | mean | training s (mean / max) | epochs × batch, lr× |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var preset in presets)
        {
            var (initial, pretrained) = baseKind switch
            {
                "pretrained" => (ModelPresets.LoadBase(preset), ModelPresets.IsPretrained(preset)),
                "random" => (TransformerModel.Create(preset, seed: 0), false),
                "bytes" => (TransformerModel.Create(preset with { Tokenizer = ChatTokenizer.ByteLevel }, seed: 0), false),
                // Another base of the same shape (a pre-training run's output), to compare candidates.
                _ when File.Exists(baseKind) => (Checkpoint.Load(File.OpenRead(baseKind)).Model, true),
                _ => throw new ArgumentException($"unknown --base {baseKind}"),
            };
            foreach (var task in tasks)
            {
                foreach (var size in sizes)
                {
                    var accuracies = new List<double>();
                    var seconds = new List<double>();
                    ResolvedHyperparameters? resolved = null;
                    for (var seed = 1; seed <= seeds; seed++)
                    {
                        var train = task.Items(size, seed, heldOut: false).Select(item => item.Example).ToList();
                        var heldOut = task.Items(HeldOutItems, seed, heldOut: true);
                        var fit = ContextWindow.Check(initial.Preset, train);
                        resolved = auto == "openai"
                            ? new ResolvedHyperparameters(OpenAiEpochs(size), (int)Math.Clamp(Math.Ceiling(size * 0.002), 1, 256), 1, [])
                            : AutoHyperparameters.Resolve(initial.Preset, pretrained, size, fit.Tokens, learningRateMultiplier: rate);
                        if (minimumSteps is { } wanted)
                        {
                            resolved = resolved with { Epochs = Math.Max(1, (int)Math.Ceiling(wanted / (double)resolved.StepsPerEpoch(size))) };
                        }
                        var clock = Stopwatch.StartNew();
                        var options = new TrainingOptions(resolved.Epochs, resolved.BatchSize, resolved.LearningRateMultiplier, seed);
                        var tuned = LocalTrainer.Train(initial, train, jitter is { } positions ? options with { PositionJitter = positions } : options);
                        seconds.Add(clock.Elapsed.TotalSeconds);
                        accuracies.Add(ExactMatch(tuned, heldOut));
                        if (args.Contains("--show-errors"))
                        {
                            foreach (var item in heldOut.Take(12))
                            {
                                var reply = Generator.Complete(tuned, item.Prompt, new SamplingOptions(Temperature: 0, MaxTokens: 24)).Text;
                                Console.WriteLine($"    {(reply == item.Answer ? "ok " : "BAD")} {item.Prompt[^1].Content} -> \"{reply}\" (want {item.Answer})");
                            }
                        }
                    }

                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {preset.Name} | {task.Name} | {size} | {string.Join(" / ", accuracies.Select(accuracy => $"{accuracy:P0}"))} | **{accuracies.Average():P0}** | {seconds.Average():F1} / {seconds.Max():F1} | {resolved!.Epochs} × {resolved.BatchSize}, {resolved.LearningRateMultiplier:0.###} |"));
                }
            }
        }
    }

    /// <summary>Greedy decoding of each held-out prompt; the reply must equal the answer exactly.</summary>
    public static double ExactMatch(TransformerModel model, IReadOnlyList<TaskItem> items) =>
        items.Average(item => Generator.Complete(model, item.Prompt, new SamplingOptions(Temperature: 0, MaxTokens: 24)).Text == item.Answer ? 1.0 : 0.0);

    public static SyntheticTask TaskNamed(string name) => name switch
    {
        "extract-order" => SyntheticTask.OrderNumber(),
        "extract-name" => SyntheticTask.CustomerName(),
        _ when name.StartsWith("route-", StringComparison.Ordinal) => SyntheticTask.Classification(
            int.Parse(name["route-".Length..].Split('+')[0], CultureInfo.InvariantCulture), name.EndsWith("+system", StringComparison.Ordinal)),
        _ => throw new ArgumentException($"unknown task {name}"),
    };

    /// <summary>OpenAI's epoch heuristic as the platform applied it to every model before: 3, raised to see 100 examples.</summary>
    private static int OpenAiEpochs(int examples) => examples * 3 < 100 ? Math.Min(25, 100 / examples) : 3;
}
