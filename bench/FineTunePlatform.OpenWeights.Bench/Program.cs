using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using FineTunePlatform.OpenWeights;
using Gemm = FineTunePlatform.LocalModels.Gemm;

// LoRA training of a SmolLM2-135M-shaped Llama (random weights) in ours and in the PyTorch reference, side by side in
// one run, plus the GEMM ceiling and generation speed.
// Usage: dotnet run -c Release --project bench/FineTunePlatform.OpenWeights.Bench [-- --steps N] [-- --skip-pytorch]
var culture = CultureInfo.InvariantCulture;
var steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(3);
var skipPyTorch = args.Contains("--skip-pytorch");
const int Threads = 2;
const int Batch = 4, Length = 256, Rank = 8;
var configJson = """
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
 "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
 "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 0}
""";
var config = ModelConfig.Parse(configJson);
Console.WriteLine(string.Create(culture, $"cores: {Environment.ProcessorCount}, GEMM: {Gemm.Backend}"));

// The ceilings: OpenBLAS sgemm at the model's MLP shape, and TensorPrimitives.Dot rows (the built-in model's kernel).
Console.WriteLine(string.Create(culture, $"GEMM 1024x576x1536: OpenBLAS sgemm {SgemmGflops(1024, 1536, 576):F0} GFLOP/s; TensorPrimitives.Dot rows (all cores) {DotGflops(1024, 1536, 576):F0} GFLOP/s"));

// ---- ours: training ----
var model = RandomModels.Create(config, seed: 1);
var adapter = LoraAdapter.Create(config, new LoraConfig(Rank, 16, Dropout: 0), seed: 2);
var random = new Random(3);
var tokens = Enumerable.Range(0, Batch * Length).Select(_ => random.Next(config.VocabularySize)).ToArray();
var targets = Enumerable.Range(0, Batch * Length).Select(_ => random.Next(config.VocabularySize)).ToArray();
var weights = Enumerable.Repeat(1f, Batch * Length).ToArray();
var pass = new TrainingPass(model, adapter, Batch, Length);
var gradients = adapter.ZerosLike();
var optimizer = new LoraAdamW(adapter);
var options = new LoraTrainingOptions(1, Batch, 1e-4, 0) { WeightDecay = 0.01 };
var times = new List<double>();
double forwardSeconds = 0, backwardSeconds = 0;
for (var step = 0; step <= steps; step++)
{
    var clock = Stopwatch.StartNew();
    var result = pass.Forward(tokens, targets, weights, training: true, dropoutSeed: step);
    var forward = clock.Elapsed.TotalSeconds;
    pass.BackwardMeanLoss(result, gradients);
    var backward = clock.Elapsed.TotalSeconds - forward;
    optimizer.Step(adapter, gradients, options.LearningRate, options);
    times.Add(clock.Elapsed.TotalSeconds);
    if (step > 0)
    {
        forwardSeconds += forward / steps;
        backwardSeconds += backward / steps;
    }
}

var ourPeak = PeakRssBytes();
var ourStep = times.Skip(1).Average();
var ourTokens = Batch * Length / ourStep;
Console.WriteLine(string.Create(culture, $"ours: steps {string.Join(" ", times.Select(t => t.ToString("F2", culture)))} s (first is warm-up); forward {forwardSeconds:F2} s + backward {backwardSeconds:F2} s per step"));
// Forward ≈ 2·N·tokens (N = base parameters) + attention 4·L·T²·d·B; backward through the frozen base ≈ the same again.
var flops = (2.0 * (2.0 * model.ParameterCount * Batch * Length + 4.0 * config.Layers * Length * Length * config.QueryDim * Batch)) + 0;
Console.WriteLine(string.Create(culture, $"ours: ≈{flops / 1e9:F0} GFLOP per step (frozen base: no weight gradients) = {flops / ourStep / 1e9:F0} GFLOP/s"));

// ---- PyTorch: the same shapes, in a child process ----
JsonElement? torch = null;
if (!skipPyTorch)
{
    var spec = Path.Combine(Path.GetTempPath(), $"openweights-bench-{Environment.ProcessId}.json");
    File.WriteAllText(spec, JsonSerializer.Serialize(new { config = JsonDocument.Parse(configJson).RootElement, batch = Batch, length = Length, rank = Rank, alpha = 16, steps = steps + 1, threads = Threads }));
    var python = Environment.GetEnvironmentVariable("FTP_PYTHON") ?? "/usr/bin/python3";
    var start = new ProcessStartInfo(python, [Path.Combine(AppContext.BaseDirectory, "reference", "llama_reference.py"), "bench", spec]) { RedirectStandardOutput = true, UseShellExecute = false };
    using var process = Process.Start(start)!;
    var output = process.StandardOutput.ReadToEnd();
    process.WaitForExit();
    File.Delete(spec);
    torch = process.ExitCode == 0 ? JsonDocument.Parse(output).RootElement : null;
    if (torch is null)
    {
        Console.WriteLine($"PyTorch bench failed (exit {process.ExitCode}); is python3-torch installed?");
    }
}

Console.WriteLine();
Console.WriteLine(string.Create(culture, $"LoRA training, SmolLM2-135M shape (random weights), batch {Batch} x {Length} tokens, r={Rank} on q,k,v,o,gate,up,down, AdamW, {Threads} cores:"));
Console.WriteLine("                 tokens/s   s/step   peak RSS");
Console.WriteLine(string.Create(culture, $"  ours           {ourTokens,8:F0} {ourStep,8:F2} {ourPeak / 1e9,8:F2} GB"));
if (torch is { } t)
{
    var torchStep = t.GetProperty("seconds_per_step").GetDouble();
    Console.WriteLine(string.Create(culture, $"  PyTorch {t.GetProperty("torch").GetString()}  {t.GetProperty("tokens_per_second").GetDouble(),8:F0} {torchStep,8:F2} {t.GetProperty("peak_rss_bytes").GetDouble() / 1e9,8:F2} GB  (steps {string.Join(" ", t.GetProperty("steps").EnumerateArray().Select(s => s.GetDouble().ToString("F2", culture)))} s)"));
    Console.WriteLine(string.Create(culture, $"  ours / PyTorch: {torchStep / ourStep:F2}x tokens/s"));
}

// ---- generation: batch 1 and 8, one adapter or eight different adapters on one base ----
Console.WriteLine();
Console.WriteLine("Generation (greedy, 32-token prompts, 64 new tokens each, KV cache):");
var adapters = Enumerable.Range(0, 8).Select(i =>
{
    var a = LoraAdapter.Create(config, new LoraConfig(Rank, 16, Dropout: 0), seed: 10 + i);
    foreach (var layer in a.Pairs)
    {
        foreach (var pair in layer.OfType<LoraPair>())
        {
            for (var j = 0; j < pair.B.Length; j++)
            {
                pair.B[j] = 1e-3f * ((j % 7) - 3);
            }
        }
    }

    return a;
}).ToArray();
Generator.Generate(model, [new GenerationRequest(tokens[..32], adapters[0], new GenerationOptions(MaxNewTokens: 4))]);
foreach (var (batch, distinct) in new[] { (1, 1), (8, 1), (8, 8) })
{
    var requests = Enumerable.Range(0, batch).Select(i => new GenerationRequest(tokens[(i * 32)..((i + 1) * 32)], adapters[i % distinct], new GenerationOptions(MaxNewTokens: 64))).ToList();
    var clock = Stopwatch.StartNew();
    var outputs = Generator.Generate(model, requests);
    var seconds = clock.Elapsed.TotalSeconds;
    var generated = outputs.Sum(output => output.Tokens.Length);
    Console.WriteLine(string.Create(culture, $"  batch {batch}, {distinct} adapter{(distinct > 1 ? "s" : "")}: {generated / seconds,7:F1} tokens/s ({seconds / 64 * 1000:F0} ms per step incl. prefill)"));
}

static long PeakRssBytes()
{
    foreach (var line in File.ReadLines("/proc/self/status"))
    {
        if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
        {
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
    }

    return 0;
}

static double SgemmGflops(int m, int n, int k)
{
    var a = new float[m * k];
    var b = new float[n * k];
    var c = new float[m * n];
    new Random(1).NextBytes(new byte[1]);
    Gemm.Multiply(a, k, false, b, k, true, c, n, m, n, k, 1f, 0f);
    var clock = Stopwatch.StartNew();
    var repeats = 0;
    while (clock.Elapsed.TotalSeconds < 1)
    {
        Gemm.Multiply(a, k, false, b, k, true, c, n, m, n, k, 1f, 0f);
        repeats++;
    }

    return 2.0 * m * n * k * repeats / clock.Elapsed.TotalSeconds / 1e9;
}

static double DotGflops(int m, int n, int k)
{
    var a = new float[m * k];
    var b = new float[n * k];
    var c = new float[m * n];
    var clock = Stopwatch.StartNew();
    var repeats = 0;
    while (clock.Elapsed.TotalSeconds < 1)
    {
        Parallel.For(0, m, row =>
        {
            var x = new ReadOnlySpan<float>(a, row * k, k);
            for (var j = 0; j < n; j++)
            {
                c[(row * n) + j] = TensorPrimitives.Dot(x, new ReadOnlySpan<float>(b, j * k, k));
            }
        });
        repeats++;
    }

    return 2.0 * m * n * k * repeats / clock.Elapsed.TotalSeconds / 1e9;
}
