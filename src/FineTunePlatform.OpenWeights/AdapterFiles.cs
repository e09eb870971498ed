using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gemm = FineTunePlatform.LocalModels.Gemm;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// PEFT's on-disk layout for a LoRA adapter, so <c>PeftModel.from_pretrained(base, dir)</c> loads what we train and we
/// load what PEFT trained: adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout,
/// target_modules, ...) and adapter_model.safetensors with tensors named
/// <c>base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight</c> [r, in] and <c>...lora_B.weight</c> [out, r].
/// </summary>
public static class PeftAdapter
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    public static void Save(LoraAdapter adapter, string directory, string? baseModelNameOrPath = null)
    {
        Directory.CreateDirectory(directory);
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["r"] = adapter.Config.Rank,
            ["lora_alpha"] = adapter.Config.Alpha,
            ["lora_dropout"] = adapter.Config.Dropout,
            ["target_modules"] = new JsonArray(adapter.Config.Targets.Select(module => (JsonNode)module.PeftName()).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["use_rslora"] = adapter.Config.UseRsLora,
            ["use_dora"] = false,
            ["init_lora_weights"] = true,
            ["inference_mode"] = true,
            ["modules_to_save"] = null,
            ["layers_to_transform"] = null,
            ["layers_pattern"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
            ["revision"] = null,
        };
        File.WriteAllText(Path.Combine(directory, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.Write(Path.Combine(directory, WeightsFile),
            adapter.Parameters().Select(parameter => TensorToWrite.FromArray(parameter.Name, parameter.Values, parameter.Shape)).ToList(),
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter for a base of the given config. Refused, naming the field or tensor: another PEFT
    /// type, DoRA, per-module rank or alpha patterns, biases, modules other than the seven linear ones, shapes that do
    /// not fit the base.
    /// </summary>
    public static LoraAdapter Load(string directory, ModelConfig model)
    {
        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath))
        {
            throw new UnsupportedModelException(ConfigFile, ConfigFile, "is missing.");
        }

        var json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new UnsupportedModelException(ConfigFile, ConfigFile, "is not a JSON object.");
        string? Text(string name) => (json[name] as JsonValue)?.TryGetValue<string>(out var text) == true ? text : null;
        UnsupportedModelException Field(string name, string message) => new(ConfigFile, name, message);
        if (Text("peft_type") != "LORA")
        {
            throw Field("peft_type", "must be LORA.");
        }

        if ((json["use_dora"] as JsonValue)?.TryGetValue<bool>(out var dora) == true && dora)
        {
            throw Field("use_dora", "DoRA is not supported.");
        }

        foreach (var pattern in new[] { "rank_pattern", "alpha_pattern" })
        {
            if (json[pattern] is JsonObject { Count: > 0 })
            {
                throw Field(pattern, "per-module ranks or alphas are not supported.");
            }
        }

        if (Text("bias") is { } bias && bias != "none")
        {
            throw Field("bias", "only bias \"none\" is supported.");
        }

        if (json["modules_to_save"] is JsonArray { Count: > 0 })
        {
            throw Field("modules_to_save", "fully trained extra modules are not supported.");
        }

        var rank = (json["r"] as JsonValue)?.TryGetValue<int>(out var r) == true && r > 0 ? r : throw Field("r", "must be a positive integer.");
        var alpha = (json["lora_alpha"] as JsonValue)?.TryGetValue<double>(out var a) == true && a > 0 ? a : throw Field("lora_alpha", "must be a positive number.");
        var dropout = (json["lora_dropout"] as JsonValue)?.TryGetValue<double>(out var d) == true ? d : 0;
        var rsLora = (json["use_rslora"] as JsonValue)?.TryGetValue<bool>(out var rs) == true && rs;

        var weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weightsPath))
        {
            throw new UnsupportedModelException(WeightsFile, WeightsFile, "is missing.");
        }

        using var file = OpenOrRefuse(weightsPath, WeightsFile);
        var pairs = new LoraPair?[model.Layers][];
        for (var l = 0; l < model.Layers; l++)
        {
            pairs[l] = new LoraPair?[LinearModules.All.Count];
        }

        var found = new Dictionary<(int Layer, LinearModule Module), (float[]? A, float[]? B)>();
        foreach (var tensor in file.Tensors)
        {
            var (layer, module, kind) = ParsePeftName(tensor.Name, model);
            var (outFeatures, inFeatures) = module.Shape(model);
            long[] shape = kind == 'A' ? [rank, inFeatures] : [outFeatures, rank];
            if (!tensor.Shape.SequenceEqual(shape))
            {
                throw new UnsupportedModelException(WeightsFile, tensor.Name, $"has shape {tensor.ShapeText}; r = {rank} and the base need [{string.Join(", ", shape)}].");
            }

            var values = file.ReadSingles(tensor.Name);
            var entry = found.GetValueOrDefault((layer, module));
            found[(layer, module)] = kind == 'A' ? (values, entry.B) : (entry.A, values);
        }

        foreach (var ((layer, module), (aValues, bValues)) in found)
        {
            if (aValues is null || bValues is null)
            {
                throw new UnsupportedModelException(WeightsFile, LoraAdapter.PeftPrefix(layer, module) + (aValues is null ? ".lora_A.weight" : ".lora_B.weight"), "is missing (its pair is present).");
            }

            var (outFeatures, inFeatures) = module.Shape(model);
            pairs[layer][(int)module] = new LoraPair(aValues, bValues, rank, outFeatures, inFeatures);
        }

        if (found.Count == 0)
        {
            throw new UnsupportedModelException(WeightsFile, WeightsFile, "holds no LoRA tensors.");
        }

        var targets = found.Keys.Select(key => key.Module).Distinct().Order().ToList();
        return new LoraAdapter(model, new LoraConfig(rank, alpha, dropout, targets, rsLora), pairs);
    }

    /// <summary>base_model.model.model.layers.{N}.{self_attn|mlp}.{module}.lora_{A|B}[.default].weight.</summary>
    private static (int Layer, LinearModule Module, char Kind) ParsePeftName(string name, ModelConfig model)
    {
        const string prefix = "base_model.model.model.layers.";
        var rest = name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : null;
        var parts = rest?.Split('.');
        // PEFT saves without the adapter name; older or hand-made files may keep ".default".
        if (parts is { Length: 6 } && parts[4] == "default")
        {
            parts = [parts[0], parts[1], parts[2], parts[3], parts[5]];
        }

        if (parts is not { Length: 5 } || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var layer) || parts[4] != "weight"
            || parts[3] is not ("lora_A" or "lora_B"))
        {
            throw new UnsupportedModelException(WeightsFile, name, "is not a LoRA tensor of a Llama-family layer (base_model.model.model.layers.N.<module>.lora_A|lora_B.weight).");
        }

        if (layer >= model.Layers)
        {
            throw new UnsupportedModelException(WeightsFile, name, $"names layer {layer}; the base has {model.Layers}.");
        }

        var path = parts[1] + "." + parts[2];
        var module = LinearModules.All.FirstOrDefault(candidate => candidate.HfPath() == path, (LinearModule)(-1));
        if (module < 0)
        {
            throw new UnsupportedModelException(WeightsFile, name, $"adapts {path}; only q, k, v, o, gate, up and down projections are supported.");
        }

        return (layer, module, parts[3][^1]);
    }

    internal static SafetensorsFile OpenOrRefuse(string path, string file)
    {
        try
        {
            return SafetensorsFile.Open(path);
        }
        catch (InvalidDataException exception)
        {
            throw new UnsupportedModelException(file, file, exception.Message);
        }
    }
}

/// <summary>
/// Our training checkpoints: one safetensors file holding the adapter under its PEFT names, AdamW's moments under
/// <c>optimizer.exp_avg.</c> / <c>optimizer.exp_avg_sq.</c> + the same names, and in the metadata the LoRA config, step,
/// epochs completed and the base's fingerprint. Megabytes, never the base; readable by any safetensors tool.
/// </summary>
public static class AdapterCheckpoint
{
    private const string Format = "ftp-lora-checkpoint";
    private const string FirstMomentPrefix = "optimizer.exp_avg.";
    private const string SecondMomentPrefix = "optimizer.exp_avg_sq.";

    /// <summary>Written to a temporary file and renamed: a reader never sees half a checkpoint.</summary>
    public static void Save(string path, LoraTrainingState state)
    {
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Save(stream, state);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The checkpoint written to a stream (a worker's upload to the training service).</summary>
    public static void Save(Stream stream, LoraTrainingState state)
    {
        var adapter = state.Adapter;
        var tensors = adapter.Parameters().Select(p => TensorToWrite.FromArray(p.Name, p.Values, p.Shape))
            .Concat(state.FirstMoment.Parameters().Select(p => TensorToWrite.FromArray(FirstMomentPrefix + p.Name, p.Values, p.Shape)))
            .Concat(state.SecondMoment.Parameters().Select(p => TensorToWrite.FromArray(SecondMomentPrefix + p.Name, p.Values, p.Shape)))
            .ToList();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["version"] = "1",
            ["r"] = adapter.Config.Rank.ToString(CultureInfo.InvariantCulture),
            ["lora_alpha"] = adapter.Config.Alpha.ToString("R", CultureInfo.InvariantCulture),
            ["lora_dropout"] = adapter.Config.Dropout.ToString("R", CultureInfo.InvariantCulture),
            ["use_rslora"] = adapter.Config.UseRsLora ? "true" : "false",
            ["target_modules"] = string.Join(",", adapter.Config.Targets.Select(module => module.PeftName())),
            ["step"] = state.Step.ToString(CultureInfo.InvariantCulture),
            ["epochs_completed"] = state.EpochsCompleted.ToString(CultureInfo.InvariantCulture),
            ["base_shape"] = Fingerprint(adapter.Model),
        };
        SafetensorsWriter.Write(stream, tensors, metadata);
    }

    /// <summary>
    /// A checkpoint that arrives as a stream (from the training service): `download` writes it into a temporary file,
    /// which safetensors' random-access reads need, deleted once the checkpoint is loaded.
    /// </summary>
    public static async Task<LoraTrainingState> LoadAsync(Func<Stream, CancellationToken, Task> download, ModelConfig model, CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"ftp-adapter-{Guid.NewGuid():N}.safetensors");
        try
        {
            await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
            {
                await download(file, cancellationToken);
            }

            return Load(path, model);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static LoraTrainingState Load(string path, ModelConfig model)
    {
        using var file = PeftAdapter.OpenOrRefuse(path, Path.GetFileName(path));
        var meta = file.Metadata;
        if (meta.GetValueOrDefault("format") != Format || meta.GetValueOrDefault("version") != "1")
        {
            throw new InvalidDataException($"{Path.GetFileName(path)} is not a version-1 LoRA checkpoint.");
        }

        if (meta.GetValueOrDefault("base_shape") != Fingerprint(model))
        {
            throw new InvalidDataException($"{Path.GetFileName(path)} was trained on a base of shape {meta.GetValueOrDefault("base_shape")}, not {Fingerprint(model)}.");
        }

        var config = new LoraConfig(
            int.Parse(meta["r"], CultureInfo.InvariantCulture),
            double.Parse(meta["lora_alpha"], CultureInfo.InvariantCulture),
            double.Parse(meta["lora_dropout"], CultureInfo.InvariantCulture),
            meta["target_modules"].Split(',').Select(LinearModules.Parse).ToList(),
            meta["use_rslora"] == "true");
        var adapter = LoraAdapter.Create(model, config, seed: 0);
        var first = adapter.ZerosLike();
        var second = adapter.ZerosLike();
        void Fill(LoraAdapter target, string prefix)
        {
            foreach (var (name, values, shape) in target.Parameters())
            {
                if (!file.TryGet(prefix + name, out var info) || !info.Shape.SequenceEqual(shape))
                {
                    throw new InvalidDataException($"{Path.GetFileName(path)}: tensor '{prefix + name}' is missing or has the wrong shape.");
                }

                file.ReadSingles(info, values);
            }
        }

        Fill(adapter, "");
        Fill(first, FirstMomentPrefix);
        Fill(second, SecondMomentPrefix);
        return new LoraTrainingState(adapter, first, second, int.Parse(meta["step"], CultureInfo.InvariantCulture), int.Parse(meta["epochs_completed"], CultureInfo.InvariantCulture));
    }

    private static string Fingerprint(ModelConfig model) => FormattableString.Invariant(
        $"{model.Architecture}:{model.Layers}x{model.HiddenSize}:h{model.Heads}/{model.KeyValueHeads}x{model.HeadDim}:i{model.IntermediateSize}");
}

/// <summary>
/// The merged full model, W' = W + s·B·A for every adapted module, as a Hugging Face directory: config.json as
/// imported, model.safetensors (sharded with model.safetensors.index.json beyond maxShardBytes) and the tokenizer
/// and generation files copied from the base directory. One tensor at a time is materialised.
/// </summary>
public static class MergedExport
{
    public static readonly IReadOnlyList<string> CopiedFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json"];

    public static void Write(LlamaModel model, LoraAdapter? adapter, string baseDirectory, string outputDirectory, TensorDType dtype = TensorDType.F32, long maxShardBytes = 2L << 30)
    {
        Directory.CreateDirectory(outputDirectory);
        var config = model.Config;
        var tensors = new List<TensorToWrite> { TensorToWrite.FromArray("model.embed_tokens.weight", model.Embedding, [config.VocabularySize, config.HiddenSize], dtype) };
        for (var l = 0; l < config.Layers; l++)
        {
            var layer = model.Layers[l];
            var prefix = $"model.layers.{l}.";
            tensors.Add(TensorToWrite.FromArray(prefix + "input_layernorm.weight", layer.InputNorm, [config.HiddenSize], dtype));
            tensors.Add(TensorToWrite.FromArray(prefix + "post_attention_layernorm.weight", layer.PostAttentionNorm, [config.HiddenSize], dtype));
            foreach (var module in LinearModules.All)
            {
                var linear = layer[module];
                var pair = adapter?[l, module];
                var scaling = adapter?.Scaling ?? 0;
                tensors.Add(new TensorToWrite(prefix + module.HfPath() + ".weight", dtype, [linear.Out, linear.In], destination =>
                {
                    linear.Weight.CopyTo(destination);
                    if (pair is not null)
                    {
                        Gemm.Multiply(pair.B, pair.Rank, false, pair.A, linear.In, false, destination, linear.In, linear.Out, linear.In, pair.Rank, scaling, 1f);
                    }
                }));
                if (linear.Bias is not null)
                {
                    tensors.Add(TensorToWrite.FromArray(prefix + module.HfPath() + ".bias", linear.Bias, [linear.Out], dtype));
                }
            }
        }

        tensors.Add(TensorToWrite.FromArray("model.norm.weight", model.FinalNorm, [config.HiddenSize], dtype));
        if (model.LmHead is not null)
        {
            tensors.Add(TensorToWrite.FromArray("lm_head.weight", model.LmHead, [config.VocabularySize, config.HiddenSize], dtype));
        }

        var shards = new List<List<TensorToWrite>> { new() };
        long shardBytes = 0;
        foreach (var tensor in tensors)
        {
            var bytes = tensor.Shape.Aggregate(1L, (product, dimension) => product * dimension) * SafetensorsFormat.ElementSize(dtype);
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes)
            {
                shards.Add([]);
                shardBytes = 0;
            }

            shards[^1].Add(tensor);
            shardBytes += bytes;
        }

        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count == 1)
        {
            SafetensorsWriter.Write(Path.Combine(outputDirectory, "model.safetensors"), shards[0], metadata);
        }
        else
        {
            var weightMap = new JsonObject();
            long total = 0;
            for (var s = 0; s < shards.Count; s++)
            {
                var name = FormattableString.Invariant($"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors");
                SafetensorsWriter.Write(Path.Combine(outputDirectory, name), shards[s], metadata);
                foreach (var tensor in shards[s])
                {
                    weightMap[tensor.Name] = name;
                    total += tensor.Shape.Aggregate(1L, (product, dimension) => product * dimension) * SafetensorsFormat.ElementSize(dtype);
                }
            }

            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
            File.WriteAllText(Path.Combine(outputDirectory, "model.safetensors.index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }

        var configJson = JsonNode.Parse(config.Json)!.AsObject();
        configJson["torch_dtype"] = dtype switch { TensorDType.BF16 => "bfloat16", TensorDType.F16 => "float16", _ => "float32" };
        File.WriteAllText(Path.Combine(outputDirectory, "config.json"), configJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var name in CopiedFiles)
        {
            var source = Path.Combine(baseDirectory, name);
            if (File.Exists(source))
            {
                File.Copy(source, Path.Combine(outputDirectory, name), overwrite: true);
            }
        }
    }
}
