namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>The training loop: learning, determinism, resume from a checkpoint, DPO, and the checkpoint format.</summary>
public sealed class TrainingTests
{
    private static readonly ModelConfig Config = TinyModels.Config(vocabulary: 40);

    /// <summary>Four prompts, each with its reply; the prompt is context (weight 0), the reply is learned.</summary>
    private static List<TrainingSequence> Task()
    {
        var list = new List<TrainingSequence>();
        for (var i = 0; i < 4; i++)
        {
            var prompt = new[] { 1, 2 + i, 3 };
            var reply = new[] { 10 + (3 * i), 11 + i, 30 + i, 39 };
            list.Add(new TrainingSequence([.. prompt, .. reply], [.. prompt.Select(_ => 0f), .. reply.Select(_ => 1f)]));
        }

        return list;
    }

    private static readonly LoraTrainingOptions Options = new(Epochs: 40, BatchSize: 2, LearningRate: 2e-2, Seed: 11);

    [Fact]
    public void Lora_training_learns_the_replies_and_the_loss_falls()
    {
        var model = TinyModels.Model(Config);
        var adapter = LoraAdapter.Create(Config, new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0.05), seed: 1);
        var losses = new List<double>();
        var trained = LoraTrainer.Train(model, adapter, Task(), Options, progress => losses.Add(progress.Loss));
        Assert.Equal(80, losses.Count);
        Assert.True(losses.TakeLast(8).Average() < 0.2 * losses.Take(8).Average(), $"loss {losses.Take(8).Average():F3} -> {losses.TakeLast(8).Average():F3}");
        foreach (var sequence in Task())
        {
            var output = Generator.Generate(model, [new GenerationRequest(sequence.Tokens[..3], trained, new GenerationOptions(MaxNewTokens: 4))])[0];
            Assert.Equal(sequence.Tokens[3..], output.Tokens);
        }

        // Only the adapter moved: the untrained base still does not answer.
        var untrained = Generator.Generate(model, [new GenerationRequest(Task()[0].Tokens[..3], null, new GenerationOptions(MaxNewTokens: 4))])[0];
        Assert.NotEqual(Task()[0].Tokens[3..], untrained.Tokens);
    }

    [Fact]
    public void Same_seed_same_adapter_bits_and_a_resumed_run_reaches_them_too()
    {
        var model = TinyModels.Model(Config);
        var adapter = LoraAdapter.Create(Config, new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0.1), seed: 1);
        var options = Options with { Epochs = 4 };
        var path = Path.GetTempFileName();
        var first = LoraTrainer.Train(model, adapter, Task(), options, onEpochEnd: state =>
        {
            if (state.EpochsCompleted == 2)
            {
                AdapterCheckpoint.Save(path, state);
            }
        });
        var again = LoraTrainer.Train(model, adapter, Task(), options);
        var resumed = LoraTrainer.Train(model, adapter, Task(), options, resumeFrom: AdapterCheckpoint.Load(path, Config));
        foreach (var ((name, a, _), (_, b, _), (_, c, _)) in first.Parameters().Zip(again.Parameters(), resumed.Parameters()))
        {
            Assert.True(a.AsSpan().SequenceEqual(b), $"{name} differs between two runs with the same seed");
            Assert.True(a.AsSpan().SequenceEqual(c), $"{name} differs after resuming from the epoch-2 checkpoint");
        }

        Assert.True(new FileInfo(path).Length < 200_000);
        File.Delete(path);
    }

    [Fact]
    public void A_checkpoint_for_another_base_or_of_another_kind_is_refused()
    {
        var state = new LoraTrainingState(LoraAdapter.Create(Config, new LoraConfig(), 1), LoraAdapter.Create(Config, new LoraConfig(), 1).ZerosLike(), LoraAdapter.Create(Config, new LoraConfig(), 1).ZerosLike(), 3, 1);
        var path = Path.GetTempFileName();
        AdapterCheckpoint.Save(path, state);
        Assert.Throws<InvalidDataException>(() => AdapterCheckpoint.Load(path, TinyModels.Config(vocabulary: 40, layers: 3)));
        var loaded = AdapterCheckpoint.Load(path, Config);
        Assert.Equal((3, 1, 8, 16.0), (loaded.Step, loaded.EpochsCompleted, loaded.Adapter.Config.Rank, loaded.Adapter.Config.Alpha));
        SafetensorsWriter.Write(path, [TensorToWrite.FromArray("x", [1f], [1])]);
        Assert.Throws<InvalidDataException>(() => AdapterCheckpoint.Load(path, Config));
        File.Delete(path);
    }

    [Fact]
    public void Dpo_makes_the_chosen_answer_more_likely_than_the_rejected_one()
    {
        var model = TinyModels.Model(Config);
        var start = LoraAdapter.Create(Config, new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0), seed: 2);
        var pairs = Enumerable.Range(0, 4).Select(i =>
        {
            int[] prompt = [1, 2 + i, 3];
            TrainingSequence Answer(int[] reply) => new([.. prompt, .. reply], [.. prompt.Select(_ => 0f), .. reply.Select(_ => 1f)]);
            return new PreferencePair(Answer([20 + i, 25, 39]), Answer([30 + i, 35, 39]));
        }).ToList();
        var losses = new List<double>();
        var trained = LoraTrainer.TrainPreferences(model, start, pairs, Options with { Epochs = 20, DpoBeta = 0.5 }, progress => losses.Add(progress.Loss));
        Assert.True(Math.Abs(losses[0] - Math.Log(2)) < 1e-6, $"first DPO loss {losses[0]} (a fresh adapter equals its reference: ln 2)");
        Assert.True(losses.TakeLast(4).Average() < 0.3, $"DPO loss ends at {losses.TakeLast(4).Average():F3}");
        double Margin(LoraAdapter adapter, PreferencePair pair)
        {
            var packed = LoraTrainer.Pack([pair.Chosen, pair.Rejected], 128);
            var pass = new TrainingPass(model, adapter, 2, packed.Length);
            pass.Forward(packed.Inputs, packed.Targets, packed.Weights, training: false);
            var p = pass.TokenLogProbabilities.ToArray();
            return p.Take(packed.Length).Sum() - p.Skip(packed.Length).Sum();
        }

        foreach (var pair in pairs)
        {
            Assert.True(Margin(trained, pair) > Margin(start, pair) + 1, "the chosen answer's log-likelihood lead grows by more than 1 nat");
        }
    }
}

/// <summary>PEFT adapter files: what PEFT would write loads back; what we cannot apply is refused naming it.</summary>
public sealed class PeftAdapterTests
{
    private static readonly ModelConfig Config = TinyModels.Config();

    [Fact]
    public void Saved_adapters_load_back_identically_with_peft_names_and_config()
    {
        var adapter = TinyModels.Adapter(Config, 3, rank: 2, targets: [LinearModule.Q, LinearModule.Down]);
        var directory = Directory.CreateTempSubdirectory("peft-").FullName;
        PeftAdapter.Save(adapter, directory, "HuggingFaceTB/SmolLM2-135M");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "adapter_config.json")))!;
        Assert.Equal(("LORA", "CAUSAL_LM", 2, 8.0), (config["peft_type"]!.GetValue<string>(), config["task_type"]!.GetValue<string>(), config["r"]!.GetValue<int>(), config["lora_alpha"]!.GetValue<double>()));
        using (var file = SafetensorsFile.Open(Path.Combine(directory, "adapter_model.safetensors")))
        {
            Assert.Equal(2 * 2 * Config.Layers, file.Tensors.Count);
            Assert.Equal([2, 32], file.Get("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight").Shape);
            Assert.Equal([32, 2], file.Get("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight").Shape);
        }

        var loaded = PeftAdapter.Load(directory, Config);
        Assert.Equal(adapter.Config.Targets, loaded.Config.Targets);
        foreach (var ((name, a, _), (_, b, _)) in adapter.Parameters().Zip(loaded.Parameters()))
        {
            Assert.True(a.AsSpan().SequenceEqual(b), name);
        }
    }

    [Theory]
    [InlineData("use_dora", "true", "use_dora")]
    [InlineData("peft_type", "\"IA3\"", "peft_type")]
    [InlineData("rank_pattern", "{\"q_proj\": 4}", "rank_pattern")]
    [InlineData("bias", "\"all\"", "bias")]
    [InlineData("r", "0", "r")]
    public void Adapter_configs_we_cannot_apply_are_refused_naming_the_field(string field, string value, string named)
    {
        var directory = Directory.CreateTempSubdirectory("peft-").FullName;
        PeftAdapter.Save(TinyModels.Adapter(Config, 3), directory);
        var path = Path.Combine(directory, "adapter_config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(path, config.ToJsonString());
        Assert.Equal(named, Assert.Throws<UnsupportedModelException>(() => PeftAdapter.Load(directory, Config)).Name);
    }

    [Theory]
    [InlineData("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", new long[] { 4, 31 })]
    [InlineData("base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight", new long[] { 4, 32 })]
    [InlineData("base_model.model.model.embed_tokens.lora_A.weight", new long[] { 4, 32 })]
    [InlineData("base_model.model.lm_head.lora_A.weight", new long[] { 4, 32 })]
    public void Adapter_tensors_that_do_not_fit_the_base_are_refused_naming_the_tensor(string tensor, long[] shape)
    {
        var directory = Directory.CreateTempSubdirectory("peft-").FullName;
        PeftAdapter.Save(TinyModels.Adapter(Config, 3, targets: [LinearModule.V]), directory);
        var path = Path.Combine(directory, "adapter_model.safetensors");
        using (var file = SafetensorsFile.Open(path))
        {
            var tensors = file.Tensors.Select(info => TensorToWrite.FromArray(info.Name, file.ReadSingles(info.Name), info.Shape)).ToList();
            tensors.Add(TensorToWrite.FromArray(tensor, new float[shape[0] * shape[1]], shape));
            file.Dispose();
            SafetensorsWriter.Write(path + ".new", tensors);
        }

        File.Move(path + ".new", path, overwrite: true);
        Assert.Equal(tensor, Assert.Throws<UnsupportedModelException>(() => PeftAdapter.Load(directory, Config)).Name);
    }
}
