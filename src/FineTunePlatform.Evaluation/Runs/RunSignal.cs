namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// Wakes one of this instance's loops without waiting for its next poll: the executor when a run is queued here
/// (the unkeyed singleton), the job-evaluation monitor when a run finishes here (keyed
/// <see cref="JobEvaluations.JobEvaluationMonitor.Wake"/>). A loop takes <see cref="Next"/> before it looks for work,
/// so a notification while it looks still wakes it.
/// </summary>
public sealed class RunSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    public void Notify() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
