using System.Diagnostics;
using System.Globalization;
using FineTunePlatform.LocalModels;
using FineTunePlatform.LocalModels.Pretraining;

// Builds what the built-in presets ship, from WordNet 3.0 (apt-get install -y wordnet-base), deterministically:
//   dotnet run -c Release --project src/FineTunePlatform.LocalModels.Pretraining -- tokenizer
//       trains the BPE (1,024 tokens) into src/FineTunePlatform.LocalModels/Resources/bpe.merges
//   dotnet run -c Release --project src/FineTunePlatform.LocalModels.Pretraining -- pretrain local-nano [steps]
//       pre-trains the preset's base from GPT-2 initialisation (seed 0) into Resources/local-nano.ftpmodel
//       (rebuild LocalModels after the tokenizer step: the presets embed the merges)
//   dotnet run -c Release --project src/FineTunePlatform.LocalModels.Pretraining -- pretrain local-nano [steps] continue
//       a second stage from the shipped base (rebuild first), on a reshuffled corpus with copying drills
//   dotnet run -c Release --project src/FineTunePlatform.LocalModels.Pretraining -- pretrain local-nano [steps] drills
//       a third stage from the shipped base: routing and copying drills (Corpus.GenerateDrills) at a third of the rate
//   FTP_PRETRAIN_OUTPUT=FILE writes a run's weights there instead of over the shipped base (to compare candidates
//   with the quality bench's --base FILE before replacing it)
//   dotnet run -c Release --project src/FineTunePlatform.LocalModels.Pretraining -- sample local-nano [FILE]
//       prints the shipped base's (or FILE's) greedy answers to a few prompts
// Same WordNet files (their SHA-256 is printed), same steps and the same machine kind: the same bytes.
var command = args.FirstOrDefault() ?? "help";
var resources = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "FineTunePlatform.LocalModels", "Resources"));
const int CorpusSeed = 1;

List<Document> Documents(int seed = CorpusSeed, bool copyDrills = false, bool drills = false)
{
    foreach (var fingerprint in WordNet.Fingerprints(WordNet.DefaultDirectory))
    {
        Console.WriteLine($"wordnet {fingerprint}");
    }

    var synsets = WordNet.Read(WordNet.DefaultDirectory);
    var documents = drills ? Corpus.GenerateDrills(synsets, seed) : Corpus.Generate(synsets, seed, copyDrills);
    Console.WriteLine($"{synsets.Count} synsets -> {documents.Count} documents, {Corpus.Texts(documents).Sum(text => (long)text.Length) / 1e6:F1} M characters");
    return documents;
}

switch (command)
{
    case "tokenizer":
    {
        var vocabulary = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1024;
        var clock = Stopwatch.StartNew();
        var tokenizer = BpeTokenizer.Train(Corpus.Texts(Documents()), vocabulary, $"bpe-{vocabulary}-wordnet3");
        Directory.CreateDirectory(resources);
        using (var file = File.Create(Path.Combine(resources, "bpe.merges")))
        {
            tokenizer.Save(file);
        }

        var sample = "Refund my invoice #12, the app crashes when I log in.";
        Console.WriteLine($"trained {tokenizer.Merges.Count} merges in {clock.Elapsed.TotalSeconds:F0} s; \"{sample}\" is {tokenizer.Encode(sample).Length} tokens ({System.Text.Encoding.UTF8.GetByteCount(sample)} bytes)");
        break;
    }

    case "pretrain":
    {
        var preset = ModelPresets.All.Single(candidate => candidate.Name == args[1]);
        var steps = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1000;
        var batch = preset.ContextLength >= 1024 ? 4 : 8;
        // `continue`: a second stage from the shipped base, on a reshuffled corpus with copying drills.
        var continuing = args.Contains("continue") || args.Contains("drills");
        // `drills`: a third stage from the shipped base, on routing and copying drills (Corpus.GenerateDrills).
        var drilling = args.Contains("drills");
        var rows = Pack(drilling ? Documents(CorpusSeed + 2, drills: true) : continuing ? Documents(CorpusSeed + 1, copyDrills: true) : Documents(), preset);
        var tokensPerEpoch = rows.Count * (long)preset.ContextLength;
        Console.WriteLine($"{preset.Name}: {preset.ParameterCount / 1e6:F2} M parameters, {rows.Count} rows of {preset.ContextLength + 1} tokens ({tokensPerEpoch / 1e6:F1} M tokens); {steps} steps of {batch} rows = {steps * batch * (long)preset.ContextLength / 1e6:F1} M tokens");
        var epochs = (int)Math.Ceiling(steps * (double)batch / rows.Count);
        var chosen = Enumerable.Range(0, epochs).SelectMany(_ => rows).Take(steps * batch).ToList();
        var options = new TrainingOptions(Epochs: 1, BatchSize: batch, LearningRateMultiplier: 1, Seed: CorpusSeed)
        {
            // The drills stage diverged at 3e-3 (loss NaN once warmup reached the peak): its answers are a few label
            // tokens repeated across rows, which grows their logits fast; a third of the rate trains it stably.
            BaseLearningRate = drilling ? 1e-3 : preset.Channels >= 256 ? 2e-3 : 3e-3,
            WeightDecay = 0.01,
        };
        var clock = Stopwatch.StartNew();
        var losses = new List<double>();
        var output = Environment.GetEnvironmentVariable("FTP_PRETRAIN_OUTPUT") is { Length: > 0 } chosenOutput ? chosenOutput : Path.Combine(resources, $"{preset.Name}.ftpmodel");
        void Save(TransformerModel model)
        {
            using var file = File.Create(output + ".tmp");
            Checkpoint.SaveModel(file, model);
            file.Close();
            File.Move(output + ".tmp", output, overwrite: true);
        }

        var start = continuing ? ModelPresets.LoadBase(preset) : TransformerModel.Create(preset, seed: 0);
        var final = LocalTrainer.TrainSequences(start, chosen, options with { Seed = drilling ? CorpusSeed + 2 : continuing ? CorpusSeed + 1 : CorpusSeed }, progress =>
        {
            // A diverged run would go on writing NaN weights over the last good save.
            if (!double.IsFinite(progress.TrainLoss))
            {
                throw new InvalidOperationException($"The loss is {progress.TrainLoss} at step {progress.Step}: the run diverged; lower the learning rate.");
            }

            losses.Add(progress.TrainLoss);
            if (progress.Step % 25 == 0 || progress.Step == progress.TotalSteps)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {progress.Step}/{progress.TotalSteps}: loss {losses.TakeLast(25).Average():F3}, {progress.TrainedTokens / clock.Elapsed.TotalSeconds:F0} tokens/s, {clock.Elapsed.TotalMinutes:F1} min"));
            }

            // A run stopped early still leaves usable weights.
            if (progress.Step % 200 == 0)
            {
                Save(progress.Model.Clone());
            }
        });
        Save(final);
        Console.WriteLine($"wrote {output} ({new FileInfo(output).Length / 1e6:F1} MB) after {clock.Elapsed.TotalMinutes:F1} min");
        break;
    }

    case "sample":
    {
        var preset = ModelPresets.All.Single(candidate => candidate.Name == args[1]);
        // A pre-training run's output instead of the shipped base: sample local-nano FILE.
        var model = args.Length > 2 ? Checkpoint.Load(File.OpenRead(args[2])).Model : ModelPresets.LoadBase(preset);
        foreach (var prompt in new[]
        {
            "hello", "What does parcel mean?", "refund my invoice #12", "Which word means \"a room where books are kept\"?", "Copy this: the cat sat on the mat",
            "Is \"quickly\" a noun, a verb, an adjective or an adverb?", "Which number is in this text? the river 40721 flooded the town",
            "Topics: food, animal, artifact. Reply with one of them.\nthe apple", "Quote the capitalised word: we met Oskar near the bridge",
        })
        {
            var reply = Generator.Complete(model, [new ChatTurn("user", prompt)], new SamplingOptions(Temperature: 0, MaxTokens: 40));
            Console.WriteLine($"{prompt} -> {reply.Text} ({reply.FinishReason})");
        }

        break;
    }

    default:
        Console.WriteLine("usage: tokenizer [vocabulary] | pretrain local-nano|local-small [steps] [continue|drills] | sample local-nano|local-small [FILE]");
        break;
}

// Documents rendered with the preset's tokenizer and packed into rows of exactly context + 1 tokens, each row
// starting at a document's start (so position 0 is always a document's first token, as in fine-tuning and serving)
// and filled with whole documents, the last one cut to fit. Every position is learned (weight 1).
static List<(int[] Tokens, float[] Weights)> Pack(List<Document> documents, ModelPreset preset)
{
    var rows = new List<(int[], float[])>();
    var row = new List<int>(preset.ContextLength + 1);
    foreach (var document in documents)
    {
        var tokens = document switch
        {
            TextDocument text => [.. preset.Tokenizer.Encode(text.Text), ChatTokens.EndOfTurn],
            ChatDocument chat => preset.Tokenizer.Render(chat.Messages).Tokens,
            _ => [],
        };
        row.AddRange(tokens);
        if (row.Count >= preset.ContextLength + 1)
        {
            var full = row.Take(preset.ContextLength + 1).ToArray();
            rows.Add((full, Enumerable.Repeat(1f, full.Length).ToArray()));
            row.Clear();
        }
    }

    return rows;
}
