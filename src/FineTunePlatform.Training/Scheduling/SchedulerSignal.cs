namespace FineTunePlatform.Training.Scheduling;

/// <summary>Wakes the scheduler now (a job was queued or freed a slot) instead of at its next tick.</summary>
public sealed class SchedulerSignal
{
    private readonly SemaphoreSlim _wake = new(0, 1);

    public void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled: one pass serves every wake-up that arrived before it.
        }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _wake.WaitAsync(timeout, cancellationToken);
}
