namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// Wakes this instance's executor when a run is queued here, so it does not wait for its next poll. The executor
/// takes <see cref="Next"/> before it looks for work, so a run queued while it looks still wakes it.
/// </summary>
public sealed class RunSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    public void Notify() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
