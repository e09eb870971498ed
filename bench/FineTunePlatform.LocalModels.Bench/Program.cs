using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using FineTunePlatform.LocalModels;

// Training speed of each preset against the machine's matmul ceiling, measured in the same run, and generation speed.
// Usage: dotnet run -c Release --project bench/FineTunePlatform.LocalModels.Bench [-- --training-only]
// The quality table (held-out accuracy of "auto" fine-tunes): ... -- quality (options in QualityBench.cs).
if (args.FirstOrDefault() == "quality")
{
    FineTunePlatform.LocalModels.Bench.QualityBench.Run(args[1..]);
    return;
}

Console.WriteLine($"cores: {Environment.ProcessorCount}");
Console.WriteLine($"GEMM backend: {Gemm.Backend}");
var ceilingOne = MatmulGflops(parallel: false);
var ceilingDots = MatmulGflops(parallel: true);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"matmul, fp32 512x512x512, TensorPrimitives.Dot rows (the old kernels): {ceilingOne:F1} GFLOP/s on 1 thread, {ceilingDots:F1} GFLOP/s on all cores"));
// The real ceiling: a BLAS sgemm, through Gemm (OpenBLAS single-threaded per block, one block per core) and through
// OpenBLAS's own thread pool, at the bench's square shape and at shapes of a transformer layer (1024 rows of 576 in).
var ceilingAll = 0.0;
foreach (var (m, n, k) in new[] { (512, 512, 512), (1024, 576, 576), (1024, 1536, 576), (1024, 256, 1024) })
{
    var one = GemmGflops(m, n, k, cores: 1);
    var all = GemmGflops(m, n, k, cores: Environment.ProcessorCount);
    var pool = OpenBlasPool.Gflops(m, n, k);
    ceilingAll = Math.Max(ceilingAll, all);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"matmul, fp32 {m}x{n}x{k}, Gemm ({(Gemm.IsNative ? "OpenBLAS sgemm" : "managed")}): {one,6:F1} GFLOP/s on 1 thread, {all,6:F1} on all cores; OpenBLAS's own threads: {(pool is { } p ? p.ToString("F1", CultureInfo.InvariantCulture) : "n/a")}"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ceiling used below (best all-core Gemm): {ceilingAll:F1} GFLOP/s"));

foreach (var preset in ModelPresets.All)
{
    var examples = Enumerable.Range(0, 64).Select(i => new SupervisedExample(
    [
        new ChatTurn("user", $"Ticket {i}: " + string.Concat(Enumerable.Repeat("the parcel is late ", preset.ContextLength / 10))),
        new ChatTurn("assistant", "shipping"),
    ])).ToList();
    var model = TransformerModel.Create(preset, seed: 1);
    long tokens = 0;
    var clock = Stopwatch.StartNew();
    LocalTrainer.Train(model, examples, new TrainingOptions(Epochs: 1, BatchSize: 8, LearningRateMultiplier: 1, Seed: 1), progress => tokens = progress.TrainedTokens);
    var seconds = clock.Elapsed.TotalSeconds;
    // Training FLOPs per token ≈ 6 × parameters (forward 2N, backward 4N) plus attention's 6·L·T·C per token.
    var sequence = examples.Average(example => Math.Min(preset.ContextLength + 1, preset.Tokenizer.Render(example.Messages).Tokens.Length));
    var flopsPerToken = (6.0 * preset.ParameterCount) + (6.0 * preset.Layers * sequence * preset.Channels);
    var gflops = tokens * flopsPerToken / seconds / 1e9;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{preset.Name,-12} {preset.ParameterCount / 1e6,5:F2} M params: training {tokens / seconds,8:F0} tokens/s, {gflops,5:F1} GFLOP/s = {100 * gflops / ceilingAll,4:F0}% of the all-core ceiling"));

    StepBreakdown(model, examples);
    if (args.Contains("--training-only"))
    {
        continue;
    }

    DecodeStepFigures(model);
    await GenerationFigures(model);
}

// Generation, warm: one stream alone; then 8 clients each sending request after request for a fixed time (a loaded
// server), first decoded separately (one generation per core at a time, the runtime before batching), then through the
// GenerationScheduler's continuous batching.
static async Task GenerationFigures(TransformerModel model)
{
    const int clients = 8;
    var duration = TimeSpan.FromSeconds(3);
    SamplingOptions Options(int i) => new(Temperature: 1, MaxTokens: 128, Seed: i);
    IReadOnlyList<ChatTurn> Prompt(int i) => [new ChatTurn("user", $"where is my parcel {i}")];
    var name = model.Preset.Name;
    Generator.Complete(model, Prompt(0), Options(0));

    var clock = Stopwatch.StartNew();
    var one = Generator.Complete(model, Prompt(0), Options(0));
    Report(name, "1 stream", one.CompletionTokens, clock.Elapsed);

    async Task Loaded(string mode, Func<int, Task<GenerationResult>> generate)
    {
        var tokens = 0;
        var started = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (var i = client; started.Elapsed < duration; i += clients)
            {
                Interlocked.Add(ref tokens, (await generate(i)).CompletionTokens);
            }
        })));
        Report(name, mode, tokens, started.Elapsed);
    }

    using var cores = new SemaphoreSlim(Environment.ProcessorCount);
    await Loaded($"{clients} clients, one per core", async i =>
    {
        await cores.WaitAsync();
        try
        {
            return Generator.Complete(model, Prompt(i), Options(i));
        }
        finally
        {
            cores.Release();
        }
    });

    var scheduler = new GenerationScheduler(maxBatch: 16);
    await Loaded($"{clients} clients, batched", i => scheduler.CompleteAsync(model, Prompt(i), Options(i)));

    var separate = Generator.Complete(model, Prompt(3), Options(3));
    var batched = await scheduler.CompleteAsync(model, Prompt(3), Options(3));
    if (separate != batched)
    {
        throw new InvalidOperationException("Batched generation must produce the same reply as separate generation.");
    }
}

// One decoding step (one new token for each of B sequences at position 32): the cost batching spreads over B.
static void DecodeStepFigures(TransformerModel model)
{
    var decoder = new KvCacheDecoder(model);
    foreach (var batch in new[] { 1, 2, 4, 8, 16 })
    {
        var sequences = Enumerable.Range(0, batch).Select(_ => new DecodingSequence(model.Preset)).ToList();
        decoder.Step(sequences.Select(sequence => (sequence, Enumerable.Range(0, 32).Select(t => 65 + (t % 26)).ToArray())).ToList());
        var step = sequences.Select(sequence => (sequence, new[] { 66 })).ToList();
        const int repeats = 300;
        var clock = new Stopwatch();
        // The first half warms the JIT's optimised tiers up.
        for (var r = 0; r < 2 * repeats; r++)
        {
            if (r == repeats)
            {
                clock.Start();
            }

            sequences.ForEach(sequence => sequence.Position = 32);
            decoder.Step(step);
        }

        var ms = clock.Elapsed.TotalMilliseconds / repeats;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{model.Preset.Name,-12} decode step, batch {batch,2}: {ms,6:F2} ms = {batch / ms * 1000,7:F0} tokens/s"));
    }
}

static void Report(string model, string mode, int tokens, TimeSpan elapsed) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{model,-12} generation, {mode,-28}: {tokens / elapsed.TotalSeconds,8:F0} tokens/s ({tokens} tokens in {elapsed.TotalMilliseconds:F0} ms)"));

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

// C = A·Bᵀ through Gemm, on one thread (a single-threaded scope) or split across the cores.
static double GemmGflops(int m, int n, int k, int cores)
{
    var random = new Random(1);
    var a = Enumerable.Range(0, m * k).Select(_ => (float)random.NextDouble()).ToArray();
    var b = Enumerable.Range(0, n * k).Select(_ => (float)random.NextDouble()).ToArray();
    var c = new float[m * n];
    void Multiply()
    {
        using var scope = Kernels.SingleThreaded(cores == 1);
        Gemm.Multiply(a, k, false, b, k, true, c, n, m, n, k);
    }

    Multiply();
    var clock = Stopwatch.StartNew();
    var runs = 0;
    while (clock.Elapsed < TimeSpan.FromSeconds(1.5))
    {
        Multiply();
        runs++;
    }

    return 2.0 * m * n * k * runs / clock.Elapsed.TotalSeconds / 1e9;
}

// Where a training step's time goes: the forward pass, the backward pass and the optimizer, at the bench's batch.
static void StepBreakdown(TransformerModel model, List<SupervisedExample> examples)
{
    var rendered = examples.Take(8).Select(example => ContextWindow.Fit(model.Preset.Tokenizer.Render(example.Messages), model.Preset.ContextLength)).ToList();
    var length = rendered.Max(pair => pair.Tokens.Length) - 1;
    var tokens = new int[8 * length];
    var targets = new int[8 * length];
    var weights = new float[8 * length];
    for (var b = 0; b < 8; b++)
    {
        for (var t = 0; t < length; t++)
        {
            var (sequence, lossWeights) = rendered[b];
            tokens[(b * length) + t] = t + 1 < sequence.Length ? sequence[t] : ChatTokens.EndOfTurn;
            targets[(b * length) + t] = t + 1 < sequence.Length ? sequence[t + 1] : 0;
            weights[(b * length) + t] = t + 1 < sequence.Length ? 1 : 0;
        }
    }

    var pass = new ForwardPass(model, 8, length);
    var optimizer = new AdamW(model.Parameters.Length);
    var options = new TrainingOptions(1, 8, 1, 1);
    double forward = 0, backward = 0, step = 0;
    const int repeats = 6;
    for (var r = 0; r < repeats + 1; r++)
    {
        var clock = Stopwatch.StartNew();
        pass.Forward(tokens, targets, weights);
        var f = clock.Elapsed.TotalMilliseconds;
        pass.Backward(tokens);
        var bw = clock.Elapsed.TotalMilliseconds - f;
        optimizer.Step((float[])model.Parameters.Clone(), pass.Gradients, 1e-4, options);
        var s = clock.Elapsed.TotalMilliseconds - f - bw;
        if (r > 0)
        {
            (forward, backward, step) = (forward + (f / repeats), backward + (bw / repeats), step + (s / repeats));
        }
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{model.Preset.Name,-12} training step of 8 x {length} tokens: forward {forward:F1} ms, backward {backward:F1} ms, AdamW {step:F1} ms"));
}
