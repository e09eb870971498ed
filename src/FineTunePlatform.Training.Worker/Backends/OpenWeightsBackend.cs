using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Worker.Training;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// Imported open-weight models (Llama, Qwen2, Mistral in the Hugging Face layout): LoRA on the frozen base, with the
/// model's own tokenizer and chat template (loss on the assistant's tokens and their end-of-turn token, honouring
/// `weight`), supervised or DPO (the frozen base plus the starting adapter as the reference). A checkpoint at every
/// epoch holds the adapter and AdamW's moments (megabytes, never the base); resuming from one reaches the same bits
/// as a run that never stopped. The base directory is fetched from the training service once per machine.
/// </summary>
public sealed class OpenWeightsBackend(BaseModelDirectories directories, IOptions<WorkerOptions> options) : ITrainingBackend
{
    /// <summary>AdamW's base learning rate for LoRA, times the job's learning_rate_multiplier (PEFT's and TRL's usual 2e-4).</summary>
    public const double BaseLearningRate = 2e-4;

    public string Name => "open_weights";

    /// <summary>The training service resolves LoRA hyperparameters for jobs on imported bases only.</summary>
    public bool CanTrain(TrainingJob job) => job.Lora is not null;

    public async Task<TrainingOutcome> TrainAsync(TrainingAttempt attempt, CancellationToken cancellationToken)
    {
        var job = attempt.Job;
        var session = attempt.Session;
        var preferenceTraining = job.Method == FineTuningMethods.Dpo;
        var rootModel = LocalBackend.RootModel(job.Model);
        var directory = await directories.GetAsync(rootModel, new InternalCaller(job.ProjectId, Roles.Member, null).ToMetadata(), cancellationToken);
        using var loaded = HuggingFaceModel.Load(directory);
        var chat = loaded.Chat ?? throw new TrainingFailedException("invalid_model", $"'{rootModel}' has no chat template.", "model");
        var maxLength = Math.Min(loaded.Model.Config.MaxPositionEmbeddings, Math.Max(16, options.Value.OpenWeightsMaxTokens));

        List<TrainingSequence> sequences = [];
        List<PreferencePair> pairs = [];
        await using (var training = await session.OpenFileAsync(job.TrainingFile, cancellationToken))
        {
            if (preferenceTraining)
            {
                pairs = [.. (await ChatExamples.ReadPreferencesAsync(training, "training_file", cancellationToken)).Select(pair => new PreferencePair(
                    Encode(chat, [.. pair.Prompt.Select(turn => turn with { Weight = 0 }), .. pair.Preferred], "training_file"),
                    Encode(chat, [.. pair.Prompt.Select(turn => turn with { Weight = 0 }), .. pair.NonPreferred], "training_file")))];
            }
            else
            {
                sequences = [.. (await ChatExamples.ReadAsync(training, "training_file", cancellationToken)).Select(example => Encode(chat, example.Messages, "training_file"))];
            }
        }

        var fitted = preferenceTraining ? pairs.SelectMany(pair => new[] { pair.Chosen, pair.Rejected }).ToList() : sequences;
        ReportContextFit(session, rootModel, fitted, maxLength, attempt.ResumeCheckpointId is null);

        List<TrainingSequence>? validation = null;
        if (!string.IsNullOrEmpty(job.ValidationFile) && !preferenceTraining)
        {
            await using var stream = await session.OpenFileAsync(job.ValidationFile, cancellationToken);
            validation = [.. (await ChatExamples.ReadAsync(stream, "validation_file", cancellationToken)).Select(example => Encode(chat, example.Messages, "validation_file"))];
        }

        var config = loaded.Model.Config;
        var lora = new LoraConfig(job.Lora.Rank, job.Lora.Alpha, job.Lora.Dropout, [.. job.Lora.TargetModules.Select(LinearModules.Parse)]);
        // A model tuned before starts from its adapter (and DPO's reference is that adapter); a fresh one is PEFT's init.
        var initial = attempt.BaseCheckpointId is { } baseCheckpoint
            ? (await LoadAsync(session, baseCheckpoint, config, cancellationToken)).Adapter
            : LoraAdapter.Create(config, lora, job.Seed);
        var resume = attempt.ResumeCheckpointId is { } resumeId ? await LoadAsync(session, resumeId, config, cancellationToken) : null;
        if (resume is not null)
        {
            session.ReportEvent($"Resuming from the checkpoint at step {resume.Step} (epoch {resume.EpochsCompleted})");
        }

        var trainingOptions = new LoraTrainingOptions(job.NEpochs, job.BatchSize, BaseLearningRate * job.LearningRateMultiplier, job.Seed)
        {
            DpoBeta = job.Beta > 0 ? job.Beta : 0.1,
            MaxLength = maxLength,
        };
        var lastCheckpoint = attempt.ResumeCheckpointId;
        (double Loss, double Accuracy)? last = null;

        // The trainer reports steps without the live adapter, so validation runs on each epoch's adapter (the checkpoint's).
        void OnStep(LoraTrainingProgress progress)
        {
            last = (progress.Loss, progress.Accuracy);
            StepMetrics.Report(session, progress.Step, progress.TotalSteps, progress.Loss, progress.Accuracy, validation: null);
        }

        // The training thread waits for the upload: once an epoch is reported saved, a lost worker resumes there.
        void OnEpochEnd(LoraTrainingState state)
        {
            (double Loss, double Accuracy)? valid = validation is { Count: > 0 } ? LoraTrainer.Evaluate(loaded.Model, state.Adapter, validation, job.BatchSize) : null;
            if (valid is { } measured)
            {
                session.ReportEvent($"Epoch {state.EpochsCompleted}: validation loss={measured.Loss:0.0000}, validation token accuracy={measured.Accuracy:0.000}",
                    data: new { step = state.Step, valid_loss = measured.Loss, valid_mean_token_accuracy = measured.Accuracy });
            }

            var metrics = StepMetrics.ForCheckpoint(state.Step, last, valid);
            lastCheckpoint = session.SaveCheckpointAsync(state.Step, state.EpochsCompleted, metrics, stream => AdapterCheckpoint.Save(stream, state), cancellationToken)
                .GetAwaiter().GetResult();
        }

        // A dedicated thread: a long job must not hold a thread-pool thread the heartbeats need.
        await Task.Factory.StartNew(
            () => preferenceTraining
                ? LoraTrainer.TrainPreferences(loaded.Model, initial, pairs, trainingOptions, OnStep, resume, OnEpochEnd, cancellationToken)
                : LoraTrainer.Train(loaded.Model, initial, sequences, trainingOptions, OnStep, resume, OnEpochEnd, cancellationToken),
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        // Billed like OpenAI: every token of every example (as this model tokenizes it), once per epoch.
        var tokensPerEpoch = fitted.Sum(sequence => (long)Math.Min(sequence.Tokens.Length, maxLength + 1));
        return new TrainingOutcome(lastCheckpoint!, tokensPerEpoch * job.NEpochs);
    }

    private static TrainingSequence Encode(ChatFormatter chat, IReadOnlyList<ChatTurn> turns, string param)
    {
        try
        {
            return chat.EncodeForTraining([.. turns.Select(turn => new ChatMessage(turn.Role, turn.Content, turn.Weight))]);
        }
        catch (ArgumentException ex)
        {
            throw new TrainingFailedException($"invalid_{param}", $"An example of the {param.Replace('_', ' ')} cannot be formatted with the model's chat template: {ex.Message}", param);
        }
    }

    /// <summary>
    /// Sequences are cut at the end beyond the training length: an example whose weighted tokens all lie beyond it
    /// teaches nothing. That is reported, and a file where no example has anything left to learn fails the job.
    /// </summary>
    private static void ReportContextFit(ITrainingSession session, string model, IReadOnlyList<TrainingSequence> sequences, int maxLength, bool firstAttempt)
    {
        // Targets are tokens[1..maxLength]: a weight beyond that index is cut away.
        var truncated = sequences.Count(sequence => sequence.Tokens.Length > maxLength + 1);
        var nothingToLearn = sequences.Count(sequence => !sequence.Weights.Skip(1).Take(maxLength).Any(weight => weight > 0));
        if (nothingToLearn == sequences.Count)
        {
            throw new TrainingFailedException("invalid_training_file",
                $"No example of the training file has an assistant token to learn within {model}'s training length of {maxLength} tokens: "
                + (truncated > 0 ? $"{truncated} of {sequences.Count} sequences are longer and their answers are cut away. Shorten the examples." : "every assistant message has weight 0 or is empty."),
                "training_file");
        }

        if (firstAttempt && truncated > 0)
        {
            session.ReportEvent(
                $"{truncated} of {sequences.Count} sequences are longer than the training length of {maxLength} tokens and are cut at the end; {nothingToLearn} of them keep no assistant token to learn.",
                level: "warn", data: new { sequences = sequences.Count, truncated, without_learned_tokens = nothingToLearn, max_tokens = maxLength });
        }
    }

    private static Task<LoraTrainingState> LoadAsync(ITrainingSession session, string checkpointId, ModelConfig config, CancellationToken cancellationToken) =>
        AdapterCheckpoint.LoadAsync(async (file, token) =>
        {
            await using var checkpoint = await session.OpenCheckpointAsync(checkpointId, token);
            await checkpoint.CopyToAsync(file, token);
        }, config, cancellationToken);
}
