namespace FineTunePlatform.ServiceDefaults;

/// <summary>
/// Wakes a background loop now instead of at its next tick. Wake-ups that arrive while it works coalesce into one
/// pass, which serves them all. A loop's own type (a subclass) keeps each loop's signal apart in DI.
/// </summary>
public abstract class WakeSignal
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
