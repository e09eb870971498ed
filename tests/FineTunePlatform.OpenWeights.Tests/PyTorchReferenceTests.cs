using System.Text.Json;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>
/// Generates the tiny random models, adapters, batches and PyTorch's answers once (reference/llama_reference.py
/// cases), for the tests below to check ours against.
/// </summary>
public sealed class ReferenceCases : IDisposable
{
    public ReferenceCases()
    {
        Root = Directory.CreateTempSubdirectory("openweights-cases-").FullName;
        PythonReference.Run("cases", Root);
    }

    public string Root { get; }

    public Case Get(string name) => new(Path.Combine(Root, name));

    public void Dispose() => Directory.Delete(Root, recursive: true);

    public sealed class Case
    {
        public Case(string directory)
        {
            Directory = directory;
            ModelDirectory = Path.Combine(directory, "model");
            Model = LlamaModel.Load(ModelDirectory);
            Adapter = PeftAdapter.Load(Path.Combine(directory, "adapter"), Model.Config);
            ReferenceAdapter = PeftAdapter.Load(Path.Combine(directory, "reference_adapter"), Model.Config);
            using (var inputs = SafetensorsFile.Open(Path.Combine(directory, "inputs.safetensors")))
            {
                Tokens = inputs.ReadInt32("tokens");
                Targets = inputs.ReadInt32("targets");
                Weights = inputs.ReadSingles("weights");
                Batch = (int)inputs.Get("tokens").Shape[0];
                Length = (int)inputs.Get("tokens").Shape[1];
                DpoTokens = inputs.ReadInt32("dpo.tokens");
                DpoTargets = inputs.ReadInt32("dpo.targets");
                DpoWeights = inputs.ReadSingles("dpo.weights");
            }

            Expected = SafetensorsFile.Open(Path.Combine(directory, "expected.safetensors"));
            Settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "case.json"))).RootElement.Clone();
        }

        public string Directory { get; }

        public string ModelDirectory { get; }

        public LlamaModel Model { get; }

        public LoraAdapter Adapter { get; }

        public LoraAdapter ReferenceAdapter { get; }

        public int Batch { get; }

        public int Length { get; }

        public int[] Tokens { get; }

        public int[] Targets { get; }

        public float[] Weights { get; }

        public int[] DpoTokens { get; }

        public int[] DpoTargets { get; }

        public float[] DpoWeights { get; }

        public SafetensorsFile Expected { get; }

        public JsonElement Settings { get; }

        public long DropoutSeed => Settings.GetProperty("dropout_seed").GetInt64();
    }
}

/// <summary>
/// Ours against PyTorch (autograd, float64) on tiny random Llama, Qwen2 and Mistral models: tied and untied heads,
/// llama3 and linear RoPE scaling, GQA (including one KV head), Qwen2's q/k/v biases, Llama's attention_bias, an
/// explicit head_dim, Mistral's sliding window, F32/BF16/F16 weights, sharded and single-file checkpoints, LoRA on
/// all seven modules or a subset, with and without dropout. Tolerance 1e-4 relative to each tensor's largest value.
/// </summary>
public sealed class PyTorchReferenceTests(ReferenceCases cases) : IClassFixture<ReferenceCases>
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> Names => new(["llama_tied_llama3_gqa", "qwen2_untied_bf16_sharded", "mistral_sliding_window_f16", "llama_dropout_linear_rope"]);

    [Theory]
    [MemberData(nameof(Names))]
    public void Logits_of_base_and_of_base_plus_adapter_match_pytorch(string name)
    {
        var c = cases.Get(name);
        var withAdapter = new TrainingPass(c.Model, c.Adapter, c.Batch, c.Length).Logits(c.Tokens);
        Compare.Close(c.Expected.ReadSingles("logits"), withAdapter, Tolerance, $"{name} logits with adapter");
        var baseOnly = new TrainingPass(c.Model, null, c.Batch, c.Length).Logits(c.Tokens);
        Compare.Close(c.Expected.ReadSingles("base_logits"), baseOnly, Tolerance, $"{name} base logits");
        // The adapter must matter, or the comparison above would not test it.
        Assert.True(withAdapter.Zip(baseOnly).Max(pair => Math.Abs(pair.First - pair.Second)) > 1e-2);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Weighted_loss_and_lora_gradients_match_pytorch_autograd(string name)
    {
        var c = cases.Get(name);
        var pass = new TrainingPass(c.Model, c.Adapter, c.Batch, c.Length);
        var gradients = c.Adapter.ZerosLike();
        var result = pass.Forward(c.Tokens, c.Targets, c.Weights, training: true, c.DropoutSeed);
        pass.BackwardMeanLoss(result, gradients);

        Compare.Close(c.Expected.ReadSingles("loss"), [(float)result.Loss], Tolerance, $"{name} loss");
        Compare.Close(c.Expected.ReadSingles("token_log_probs"), pass.TokenLogProbabilities, Tolerance, $"{name} token log-probabilities");
        foreach (var (tensor, values, _) in gradients.Parameters())
        {
            Compare.Close(c.Expected.ReadSingles("grad." + tensor), values, Tolerance, $"{name} gradient of {tensor}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void One_clipped_adamw_step_matches_torch_optim_adamw(string name)
    {
        var c = cases.Get(name);
        var adamw = c.Settings.GetProperty("adamw");
        var options = new LoraTrainingOptions(1, 1, adamw.GetProperty("lr").GetDouble(), 0)
        {
            WeightDecay = adamw.GetProperty("weight_decay").GetDouble(),
            MaxGradientNorm = adamw.GetProperty("max_grad_norm").GetDouble(),
        };
        var pass = new TrainingPass(c.Model, c.Adapter, c.Batch, c.Length);
        var gradients = c.Adapter.ZerosLike();
        pass.BackwardMeanLoss(pass.Forward(c.Tokens, c.Targets, c.Weights, training: true, c.DropoutSeed), gradients);
        var stepped = c.Adapter.Clone();
        new LoraAdamW(stepped).Step(stepped, gradients, options.LearningRate, options);
        foreach (var (tensor, values, _) in stepped.Parameters())
        {
            Compare.Close(c.Expected.ReadSingles("adamw." + tensor), values, Tolerance, $"{name} AdamW update of {tensor}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Dpo_loss_and_gradients_against_a_reference_adapter_match_pytorch(string name)
    {
        var c = cases.Get(name);
        var batch = c.DpoTokens.Length / c.Length;
        var policy = new TrainingPass(c.Model, c.Adapter, batch, c.Length);
        var reference = new TrainingPass(c.Model, c.ReferenceAdapter, batch, c.Length);
        var gradients = c.Adapter.ZerosLike();
        var packed = new LoraTrainer.PackedBatch(batch, c.Length, c.DpoTokens, c.DpoTargets, c.DpoWeights, c.DpoTokens.Length);
        var (loss, _) = LoraTrainer.PreferenceGradients(policy, reference, packed, c.Settings.GetProperty("dpo_beta").GetDouble(), c.DropoutSeed, gradients);

        Compare.Close(c.Expected.ReadSingles("dpo.loss"), [(float)loss], Tolerance, $"{name} DPO loss");
        foreach (var (tensor, values, _) in gradients.Parameters())
        {
            Compare.Close(c.Expected.ReadSingles("dpo.grad." + tensor), values, Tolerance, $"{name} DPO gradient of {tensor}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Exported_peft_adapter_and_merged_model_reloaded_by_pytorch_give_our_logits(string name)
    {
        var c = cases.Get(name);
        var export = Path.Combine(c.Directory, "export");
        var peft = Path.Combine(export, "peft");
        var merged = Path.Combine(export, "merged");
        PeftAdapter.Save(c.Adapter, peft, "tiny");
        // A small shard limit so the merged export is sharded with an index.
        MergedExport.Write(c.Model, c.Adapter, c.ModelDirectory, merged, maxShardBytes: 64 << 10);
        var tokensFile = Path.Combine(export, "tokens.safetensors");
        SafetensorsWriter.Write(tokensFile, [TensorToWrite.FromInt64("tokens", c.Tokens.Select(token => (long)token).ToArray(), [c.Batch, c.Length])]);
        var spec = Path.Combine(export, "spec.json");
        var output = Path.Combine(export, "logits.safetensors");
        File.WriteAllText(spec, JsonSerializer.Serialize(new { model = c.ModelDirectory, adapter = peft, merged, tokens = tokensFile, @out = output }));
        PythonReference.Run("check-export", spec);

        var ours = new TrainingPass(c.Model, c.Adapter, c.Batch, c.Length).Logits(c.Tokens);
        using var reloaded = SafetensorsFile.Open(output);
        Compare.Close(reloaded.ReadSingles("peft_logits"), ours, Tolerance, $"{name} PyTorch logits of base + our PEFT export");
        Compare.Close(reloaded.ReadSingles("merged_logits"), ours, Tolerance, $"{name} PyTorch logits of our merged export");

        // And ours, loading our own merged export, equals base + adapter.
        var mergedModel = LlamaModel.Load(merged);
        Compare.Close(ours, new TrainingPass(mergedModel, null, c.Batch, c.Length).Logits(c.Tokens), Tolerance, $"{name} merged model vs base + adapter");
    }
}
