using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Worker.Training;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// Imported open-weight models (Llama, Qwen2, Mistral in the Hugging Face layout): LoRA on the frozen base, with the
/// model's own tokenizer and chat template (loss on the assistant's tokens and their end-of-turn token, honouring
/// `weight`), supervised or DPO (the frozen base plus the starting adapter as the reference). A checkpoint at every
/// epoch holds the adapter and AdamW's moments (megabytes, never the base); resuming from one reaches the same bits
/// as a run that never stopped. The base directory is fetched from the training service once per machine.
/// </summary>
public sealed class OpenWeightsBackend(BaseModelDirectories directories) : ITrainingBackend
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
        // Jobs created before the training service set the length train at the limit it used then.
        var maxLength = TrainingFit.LengthFor(loaded.Model.Config.MaxPositionEmbeddings, job.Lora.MaxTokens > 0 ? job.Lora.MaxTokens : LegacyMaxTokens);
        var fit = new TrainingFit(maxLength);
        List<TrainingSequence> sequences = [];
        List<PreferencePair> pairs = [];
        await using (var training = await session.OpenFileAsync(job.TrainingFile, cancellationToken))
        {
            if (preferenceTraining)
            {
                await foreach (var (line, example) in ChatExamples.ReadLinesAsync(ChatExampleReader.ReadPreferencesAsync(training, cancellationToken), "training_file"))
                {
                    var pair = Encode(() => OpenWeightsExamples.Encode(chat, example), "training_file");
                    fit.Add(line, pair.Chosen, pair.Rejected);
                    pairs.Add(pair);
                }
            }
            else
            {
                await foreach (var (line, example) in ChatExamples.ReadLinesAsync(ChatExampleReader.ReadChatAsync(training, cancellationToken), "training_file"))
                {
                    var sequence = Encode(() => OpenWeightsExamples.Encode(chat, example.Messages), "training_file");
                    fit.Add(line, sequence);
                    sequences.Add(sequence);
                }
            }
        }

        RefuseNothingToLearn(rootModel, fit);

        List<TrainingSequence>? validation = null;
        if (!string.IsNullOrEmpty(job.ValidationFile) && !preferenceTraining)
        {
            await using var stream = await session.OpenFileAsync(job.ValidationFile, cancellationToken);
            validation = [.. (await ChatExamples.ReadAsync(stream, "validation_file", cancellationToken)).Select(example => Encode(() => OpenWeightsExamples.Encode(chat, example.Messages), "validation_file"))];
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

        // Billed like OpenAI: every token of every example (as this model tokenizes it), once per epoch; the training
        // service's estimate counted the same (TrainingFit).
        return new TrainingOutcome(lastCheckpoint!, fit.TokensPerEpoch * job.NEpochs);
    }

    /// <summary>The training length of jobs created before the training service chose it (the worker's limit then).</summary>
    private const int LegacyMaxTokens = 2048;

    private static T Encode<T>(Func<T> encode, string param)
    {
        try
        {
            return encode();
        }
        catch (ArgumentException ex)
        {
            throw new TrainingFailedException($"invalid_{param}", $"An example of the {param.Replace('_', ' ')} cannot be formatted with the model's chat template: {ex.Message}", param);
        }
    }

    /// <summary>
    /// The job's events already say what is cut (job creation counted the same fit); a file where no example has
    /// anything left to learn fails the job (creation refuses one, so this guards jobs created before that check).
    /// </summary>
    private static void RefuseNothingToLearn(string model, TrainingFit fit)
    {
        if (fit.NothingToLearn)
        {
            throw new TrainingFailedException("invalid_training_file", $"The training file has nothing to learn: {fit.Describe(model)} Shorten the examples.", "training_file");
        }
    }

    private static Task<LoraTrainingState> LoadAsync(ITrainingSession session, string checkpointId, ModelConfig config, CancellationToken cancellationToken) =>
        AdapterCheckpoint.LoadAsync(async (file, token) =>
        {
            await using var checkpoint = await session.OpenCheckpointAsync(checkpointId, token);
            await checkpoint.CopyToAsync(file, token);
        }, config, cancellationToken);
}
