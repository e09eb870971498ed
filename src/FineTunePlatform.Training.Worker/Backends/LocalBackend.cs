using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using FineTunePlatform.Training.Worker.Training;
using Microsoft.Extensions.Options;
using Checkpoint = FineTunePlatform.LocalModels.Checkpoint;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// The built-in CPU transformer (FineTunePlatform.LocalModels): trains the local-* presets and models fine-tuned
/// from them, deterministic for the job's seed, a checkpoint at every epoch, resumable from any of them.
/// </summary>
public sealed class LocalBackend(IOptions<WorkerOptions> options) : ITrainingBackend
{
    public string Name => "local";

    public bool CanTrain(TrainingJob job) => ModelPresets.TryGet(RootModel(job.Model), out _);

    public async Task<TrainingOutcome> TrainAsync(TrainingAttempt attempt, CancellationToken cancellationToken)
    {
        var job = attempt.Job;
        var session = attempt.Session;
        var preferenceTraining = job.Method == FineTuningMethods.Dpo;
        List<SupervisedExample> examples = [];
        List<PreferenceExample> preferences = [];
        await using (var training = await session.OpenFileAsync(job.TrainingFile, cancellationToken))
        {
            if (preferenceTraining)
            {
                preferences = await ChatExamples.ReadPreferencesAsync(training, "training_file", cancellationToken);
            }
            else
            {
                examples = await ChatExamples.ReadAsync(training, "training_file", cancellationToken);
            }
        }

        if (examples.Count + preferences.Count == 0)
        {
            throw new TrainingFailedException("invalid_training_file", "The training file has no examples.", "training_file");
        }

        // Validation metrics are the supervised loss and accuracy; a DPO job's validation file is not evaluated yet.
        List<SupervisedExample>? validation = null;
        if (!string.IsNullOrEmpty(job.ValidationFile) && !preferenceTraining)
        {
            await using var stream = await session.OpenFileAsync(job.ValidationFile, cancellationToken);
            validation = await ChatExamples.ReadAsync(stream, "validation_file", cancellationToken);
        }

        ModelPresets.TryGet(RootModel(job.Model), out var preset);
        var initial = attempt.BaseCheckpointId is { } baseCheckpoint
            ? (await LoadAsync(session, baseCheckpoint, cancellationToken)).Model
            : ModelPresets.LoadBase(preset!);
        ReportContextFit(session, initial.Preset, preferenceTraining
            ? [.. preferences.SelectMany(pair => new[] { Answer(pair, pair.Preferred), Answer(pair, pair.NonPreferred) })]
            : examples, attempt.ResumeCheckpointId is null, sequencesPerLine: preferenceTraining ? 2 : 1);
        var resume = attempt.ResumeCheckpointId is { } resumeId ? await LoadAsync(session, resumeId, cancellationToken) : null;
        if (resume is not null)
        {
            session.ReportEvent($"Resuming from the checkpoint at step {resume.Step} (epoch {resume.EpochsCompleted})");
        }

        var trainingOptions = new TrainingOptions(job.NEpochs, job.BatchSize, job.LearningRateMultiplier, job.Seed) { Beta = job.Beta };
        var validationEvery = Math.Max(1, options.Value.ValidationEverySteps);
        var lastCheckpoint = attempt.ResumeCheckpointId;
        TrainingProgress? last = null;
        (int Step, (double Loss, double Accuracy) Result)? lastValidation = null;
        (double Loss, double Accuracy)? Validate(TransformerModel model) =>
            validation is { Count: > 0 } ? LocalTrainer.Evaluate(model, validation, job.BatchSize) : null;

        void OnStep(TrainingProgress progress)
        {
            last = progress;
            // Every N steps (and at the end) a validation pass on the live weights, reported with the step's metrics.
            var valid = progress.Step % validationEvery == 0 || progress.Step == progress.TotalSteps ? Validate(progress.Model) : null;
            if (valid is { } result)
            {
                lastValidation = (progress.Step, result);
            }

            StepMetrics.Report(session, progress.Step, progress.TotalSteps, progress.TrainLoss, progress.TrainTokenAccuracy, valid);
        }

        // The training thread waits for the upload: once an epoch is reported saved, a lost worker resumes there.
        void OnEpochEnd(TrainingCheckpoint checkpoint)
        {
            // The checkpoint holds the weights after its step: a validation of that step already measured them.
            var valid = lastValidation is { } measured && measured.Step == checkpoint.Step ? measured.Result : Validate(checkpoint.Model);
            var metrics = StepMetrics.ForCheckpoint(checkpoint.Step, last is null ? null : (last.TrainLoss, last.TrainTokenAccuracy), valid);

            lastCheckpoint = session.SaveCheckpointAsync(
                checkpoint.Step, checkpoint.EpochsCompleted, metrics, stream => Checkpoint.Save(stream, checkpoint), cancellationToken)
                .GetAwaiter().GetResult();
        }

        // A dedicated thread: a long job must not hold a thread-pool thread the heartbeats need.
        await Task.Factory.StartNew(
            () => preferenceTraining
                ? LocalTrainer.TrainPreferences(initial, preferences, trainingOptions, OnStep, resume, OnEpochEnd, cancellationToken)
                : LocalTrainer.Train(initial, examples, trainingOptions, OnStep, resume, OnEpochEnd, cancellationToken),
            cancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        // Billed like OpenAI: every token of every example, once per epoch.
        var tokenizer = initial.Preset.Tokenizer;
        var tokensPerEpoch = examples.Sum(example => (long)tokenizer.Render(example.Messages).Tokens.Length)
            + preferences.Sum(example => (long)tokenizer.Render([.. example.Prompt, .. example.Preferred]).Tokens.Length + tokenizer.Render([.. example.Prompt, .. example.NonPreferred]).Tokens.Length);
        return new TrainingOutcome(lastCheckpoint!, tokensPerEpoch * job.NEpochs);
    }

    private static SupervisedExample Answer(PreferenceExample pair, IReadOnlyList<ChatTurn> answer) =>
        new([.. pair.Prompt.Select(turn => turn with { Weight = 0 }), .. answer]);

    /// <summary>
    /// Truncation is never silent: examples longer than the context (their start is cut) and examples left with no
    /// assistant token to learn are reported as warnings in the job's events, and a file in which no example has
    /// anything to learn fails the job before it trains.
    /// </summary>
    private static void ReportContextFit(ITrainingSession session, ModelPreset preset, IReadOnlyList<SupervisedExample> examples, bool firstAttempt, int sequencesPerLine)
    {
        var fit = ContextWindow.Check(preset, examples);
        if (fit.NothingToLearn)
        {
            throw new TrainingFailedException("invalid_training_file",
                $"No example of the training file has an assistant token to learn within {preset.Name}'s context of {preset.ContextLength} tokens: "
                + (fit.Truncated > 0
                    ? $"{fit.Truncated} of {fit.Examples} examples are longer than the context and their assistant messages alone do not fit in it. Shorten the examples or use a model with a longer context."
                    : "every assistant message has weight 0 or is empty."),
                "training_file");
        }

        if (!firstAttempt)
        {
            return;
        }

        if (fit.Truncated > 0)
        {
            session.ReportEvent(
                $"{fit.Truncated} of {fit.Examples} examples are longer than {preset.Name}'s context of {preset.ContextLength} tokens; their beginning is cut (the last turns are kept, as when serving a long prompt).",
                level: "warn", data: new { examples = fit.Examples, truncated = fit.Truncated, context_tokens = preset.ContextLength });
        }

        if (fit.WithoutLearnedTokens > 0)
        {
            session.ReportEvent(
                $"{fit.WithoutLearnedTokens} of {fit.Examples} examples have no assistant token to learn within the context and are skipped (lines {string.Join(", ", fit.FirstWithoutLearnedTokens.Select(index => (index / sequencesPerLine) + 1).Distinct())}{(fit.WithoutLearnedTokens > fit.FirstWithoutLearnedTokens.Count ? ", ..." : "")}).",
                level: "warn", data: new { examples = fit.Examples, without_learned_tokens = fit.WithoutLearnedTokens, context_tokens = preset.ContextLength });
        }
    }

    private static async Task<TrainingCheckpoint> LoadAsync(ITrainingSession session, string checkpointId, CancellationToken cancellationToken)
    {
        await using var stream = await session.OpenCheckpointAsync(checkpointId, cancellationToken);
        return Checkpoint.Load(stream);
    }

    /// <summary>`local-nano`, or the preset at the root of `ft:local-nano:project:suffix:job[:ckpt-step-n]`.</summary>
    public static string RootModel(string model) => model.StartsWith("ft:", StringComparison.Ordinal) ? model.Split(':')[1] : model;
}
