using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using FineTunePlatform.LocalModels;

// Training speed of each preset against the machine's matmul ceiling, measured in the same run, and generation speed.
// Usage: dotnet run -c Release --project bench/FineTunePlatform.LocalModels.Bench
Console.WriteLine($"cores: {Environment.ProcessorCount}");
var ceilingOne = MatmulGflops(parallel: false);
var ceilingAll = MatmulGflops(parallel: true);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"matmul ceiling (fp32 512x512x512, TensorPrimitives.Dot rows): {ceilingOne:F1} GFLOP/s on 1 thread, {ceilingAll:F1} GFLOP/s on all cores"));

foreach (var preset in ModelPresets.All)
{
    var examples = Enumerable.Range(0, 64).Select(i => new SupervisedExample(
    [
        new ChatTurn("user", $"Ticket {i}: " + string.Concat(Enumerable.Repeat("the parcel is late ", preset.ContextLength / 24))),
        new ChatTurn("assistant", "shipping"),
    ])).ToList();
    var model = TransformerModel.Create(preset, seed: 1);
    long tokens = 0;
    var clock = Stopwatch.StartNew();
    LocalTrainer.Train(model, examples, new TrainingOptions(Epochs: 1, BatchSize: 8, LearningRateMultiplier: 1, Seed: 1), progress => tokens = progress.TrainedTokens);
    var seconds = clock.Elapsed.TotalSeconds;
    // Training FLOPs per token ≈ 6 × parameters (forward 2N, backward 4N) plus attention's 6·L·T·C per token.
    var sequence = examples.Average(example => ChatTokens.Render(example.Messages).Tokens.Length);
    var flopsPerToken = (6.0 * preset.ParameterCount) + (6.0 * preset.Layers * sequence * preset.Channels);
    var gflops = tokens * flopsPerToken / seconds / 1e9;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{preset.Name,-12} {preset.ParameterCount / 1e6,5:F2} M params: training {tokens / seconds,8:F0} tokens/s, {gflops,5:F1} GFLOP/s = {100 * gflops / ceilingAll,4:F0}% of the all-core ceiling"));

    var generated = 0;
    clock.Restart();
    var one = Generator.Complete(model, [new ChatTurn("user", "where is my parcel")], new SamplingOptions(Temperature: 1, MaxTokens: 32, Seed: 1));
    generated += one.CompletionTokens;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{preset.Name,-12} generation, 1 stream: {generated / clock.Elapsed.TotalSeconds,8:F0} tokens/s"));
    clock.Restart();
    var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() =>
        Generator.Complete(model, [new ChatTurn("user", $"where is my parcel {i}")], new SamplingOptions(Temperature: 1, MaxTokens: 32, Seed: i)))));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{preset.Name,-12} generation, 8 streams: {results.Sum(result => result.CompletionTokens) / clock.Elapsed.TotalSeconds,8:F0} tokens/s in total"));
}

static double MatmulGflops(bool parallel)
{
    const int n = 512;
    var a = new float[n * n];
    var b = new float[n * n];
    var c = new float[n * n];
    var random = new Random(1);
    for (var i = 0; i < a.Length; i++)
    {
        a[i] = (float)random.NextDouble();
        b[i] = (float)random.NextDouble();
    }

    void Multiply()
    {
        void Row(int i)
        {
            var x = new ReadOnlySpan<float>(a, i * n, n);
            for (var j = 0; j < n; j++)
            {
                c[(i * n) + j] = TensorPrimitives.Dot(x, new ReadOnlySpan<float>(b, j * n, n));
            }
        }

        if (parallel)
        {
            Parallel.For(0, n, Row);
        }
        else
        {
            for (var i = 0; i < n; i++)
            {
                Row(i);
            }
        }
    }

    Multiply();
    var clock = Stopwatch.StartNew();
    var runs = 0;
    while (clock.Elapsed < TimeSpan.FromSeconds(2))
    {
        Multiply();
        runs++;
    }

    return 2.0 * n * n * n * runs / clock.Elapsed.TotalSeconds / 1e9;
}
