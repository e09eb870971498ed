namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// A fine-tuning job and its state machine. The row is the truth: a worker acts on an attempt only while it holds
/// that attempt's lease, so every transition below checks the state it starts from and says why when it cannot.
/// </summary>
public sealed class TrainingJob
{
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Model { get; init; }

    /// <summary>The preset at the root of the model's lineage (the base of a base that is itself fine-tuned).</summary>
    public required string RootModel { get; init; }

    public required string TrainingFile { get; init; }

    public string? ValidationFile { get; init; }

    public string? Suffix { get; init; }

    public int Seed { get; init; }

    /// <summary>The caller's metadata as a JSON object (jsonb).</summary>
    public required string Metadata { get; init; }

    public required string Method { get; init; }

    public int Epochs { get; init; }

    public int BatchSize { get; init; }

    public double LearningRateMultiplier { get; init; }

    public double? Beta { get; init; }

    /// <summary>The LoRA adapter of a job on an imported open-weight base (null for the built-in presets, which train all weights).</summary>
    public LoraSettings? Lora { get; init; }

    /// <summary>Training tokens the job will bill (tokens per epoch times epochs), counted against the daily quota.</summary>
    public long EstimatedTokens { get; init; }

    /// <summary>Born queued (its files and base checked at creation); every later status is a transition below.</summary>
    public string Status { get; private set; } = JobStatus.Queued;

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? FirstDispatchedAt { get; private set; }

    public DateTimeOffset? FinishedAt { get; private set; }

    public DateTimeOffset? EstimatedFinish { get; private set; }

    public string? FineTunedModel { get; private set; }

    public long? TrainedTokens { get; private set; }

    public string? ResultFile { get; private set; }

    public string? ErrorCode { get; private set; }

    public string? ErrorMessage { get; private set; }

    public string? ErrorParam { get; private set; }

    /// <summary>How many times the job was dispatched; TrainJob and every worker call name the attempt they act for.</summary>
    public int Attempt { get; private set; }

    public string? LeaseOwner { get; private set; }

    public DateTimeOffset? LeaseExpiresAt { get; private set; }

    public DateTimeOffset? AttemptStartedAt { get; private set; }

    public int Step { get; private set; }

    public int TotalSteps { get; private set; }

    /// <summary>Our automatic evaluation: the eval the evaluation service runs on the base and the tuned model once the job succeeds (null: none).</summary>
    public string? EvalId { get; init; }

    /// <summary>The evaluation's run data source as JSON, without a model (the base and the tuned one are filled in).</summary>
    public string? EvaluationDataSource { get; init; }

    public double EvaluationMinImprovement { get; init; }

    /// <summary>The project required evaluation when the job was created: the model stays unpublished until it passes.</summary>
    public bool EvaluationGated { get; init; }

    /// <summary>The evaluation's verdict (promote, reject, failed), recorded once.</summary>
    public string? EvaluationVerdict { get; private set; }

    /// <summary>When TrainingJobFinished last asked for the evaluation; re-sent while no verdict has come back.</summary>
    public DateTimeOffset? EvaluationRequestedAt { get; private set; }

    /// <summary>Why a queued job is not dispatched yet (the last reason told to the user, so it is said once).</summary>
    public string? WaitReason { get; private set; }

    /// <summary>PostgreSQL's xmin: a worker's report and a user's cancel that race cannot both win.</summary>
    public uint Version { get; set; }

    /// <summary>The model id the job produces; checkpoints append `:ckpt-step-{n}`.</summary>
    public string OutputModelId => $"ft:{RootModel}:{ProjectId}:{Suffix}:{Id}";

    public void Cancel(DateTimeOffset now)
    {
        if (JobStatus.IsTerminal(Status))
        {
            throw new InvalidJobTransitionException($"Job {Id} has already {Status}; only a job that has not finished can be cancelled.");
        }

        Status = JobStatus.Cancelled;
        FinishedAt = now;
        ReleaseLease();
    }

    public void Pause()
    {
        if (Status is not (JobStatus.Queued or JobStatus.Running))
        {
            throw new InvalidJobTransitionException($"Job {Id} is {Status}; only a queued or running job can be paused.");
        }

        Status = JobStatus.Paused;
        ReleaseLease();
    }

    public void Resume()
    {
        if (Status != JobStatus.Paused)
        {
            throw new InvalidJobTransitionException($"Job {Id} is {Status}; only a paused job can be resumed.");
        }

        Status = JobStatus.Queued;
        WaitReason = null;
    }

    /// <summary>Queued to running: a new attempt that a worker must claim before `claimDeadline`.</summary>
    public void Dispatch(DateTimeOffset now, DateTimeOffset claimDeadline)
    {
        if (Status != JobStatus.Queued)
        {
            throw new InvalidJobTransitionException($"Job {Id} is {Status}; only a queued job can be dispatched.");
        }

        Status = JobStatus.Running;
        Attempt++;
        FirstDispatchedAt ??= now;
        AttemptStartedAt = now;
        LeaseOwner = null;
        LeaseExpiresAt = claimDeadline;
        EstimatedFinish = null;
        WaitReason = null;
    }

    /// <summary>Why `worker` may not act for `attempt`, or null when it holds (or may take) the lease.</summary>
    public string? RefuseWorker(int attempt, string worker, bool claiming)
    {
        if (Status != JobStatus.Running)
        {
            return $"the job is {Status}";
        }

        if (attempt != Attempt)
        {
            return $"attempt {attempt} was superseded by attempt {Attempt}";
        }

        if (claiming)
        {
            return LeaseOwner is null || LeaseOwner == worker ? null : $"attempt {attempt} is held by {LeaseOwner}";
        }

        return LeaseOwner == worker ? null : $"attempt {attempt} is not held by {worker}";
    }

    public void RenewLease(string worker, DateTimeOffset expiresAt)
    {
        LeaseOwner = worker;
        LeaseExpiresAt = expiresAt;
    }

    /// <summary>A worker takes the dispatched attempt: the lease is its, and the attempt's clock (for the ETA) starts.</summary>
    public void Claim(string worker, DateTimeOffset now, DateTimeOffset leaseExpiresAt)
    {
        RenewLease(worker, leaseExpiresAt);
        AttemptStartedAt = now;
    }

    /// <summary>A heartbeat's progress; the finish is estimated from this attempt's pace so far.</summary>
    public void ReportProgress(int step, int totalSteps, DateTimeOffset now)
    {
        Step = step;
        TotalSteps = totalSteps;
        if (step > 0 && totalSteps >= step && AttemptStartedAt is { } started)
        {
            var perStep = (now - started) / Math.Max(1, step);
            EstimatedFinish = now + (perStep * (totalSteps - step));
        }
    }

    /// <summary>Records why a queued job waits; false when that is what it was told already (said once).</summary>
    public bool Wait(string reason)
    {
        if (WaitReason == reason)
        {
            return false;
        }

        WaitReason = reason;
        return true;
    }

    /// <summary>A succeeded job's evaluation was asked for (again) now.</summary>
    public void AskForEvaluation(DateTimeOffset now) => EvaluationRequestedAt = now;

    /// <summary>The evaluation's verdict (promote, reject, failed); false when it is the one on record already.</summary>
    public bool RecordVerdict(string verdict)
    {
        if (verdict == EvaluationVerdict)
        {
            return false;
        }

        EvaluationVerdict = verdict;
        return true;
    }

    /// <summary>The lease ran out (worker gone, or no worker claimed the attempt): back to the queue.</summary>
    public void Requeue()
    {
        Status = JobStatus.Queued;
        ReleaseLease();
    }

    public void Succeed(DateTimeOffset now, string fineTunedModel, long trainedTokens, string? resultFile)
    {
        Status = JobStatus.Succeeded;
        FinishedAt = now;
        FineTunedModel = fineTunedModel;
        TrainedTokens = trainedTokens;
        ResultFile = resultFile;
        // Its evaluation (if it names one) is asked for now, and again until a verdict comes back.
        EvaluationRequestedAt = EvalId is null ? null : now;
        ReleaseLease();
    }

    public void Fail(DateTimeOffset now, string code, string message, string? param)
    {
        Status = JobStatus.Failed;
        FinishedAt = now;
        ErrorCode = code;
        ErrorMessage = message;
        ErrorParam = param;
        ReleaseLease();
    }

    private void ReleaseLease()
    {
        LeaseOwner = null;
        LeaseExpiresAt = null;
        EstimatedFinish = null;
    }
}

public sealed class InvalidJobTransitionException(string message) : Exception(message);

/// <summary>
/// A LoRA job's adapter shape (stored as jsonb): rank, alpha, dropout and the linear modules it adapts; and the
/// length it trains at, chosen at creation so that the estimate and the charge count the same tokens (0 in jobs
/// created before it was recorded).
/// </summary>
public sealed record LoraSettings(int Rank, double Alpha, double Dropout, IReadOnlyList<string> TargetModules, int MaxTokens = 0)
{
    public static readonly IReadOnlyList<string> AllModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>PEFT's usual starting point, as Together and Fireworks default to: rank 8, alpha 16, dropout 0.05, every linear module.</summary>
    public static readonly LoraSettings Default = new(8, 16, 0.05, AllModules);
}
