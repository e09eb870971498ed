using System.Collections.Concurrent;
using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>
/// The built-in CPU runtime: serves the base presets (`local-nano`, `local-small`) with their deterministic initial
/// weights. Generation work is bounded to one request per core so concurrent requests share the machine instead of
/// oversubscribing it. Fine-tuned `ft:local-*` models join once the training service's registry serves artifacts.
/// </summary>
public sealed class LocalModelRuntime
{
    private readonly ConcurrentDictionary<string, TransformerModel> _models = new();
    private readonly SemaphoreSlim _slots = new(Environment.ProcessorCount);

    public static bool IsBaseModel(string model) => ModelPresets.TryGet(model, out _);

    public TransformerModel Get(string model) =>
        _models.GetOrAdd(model, name => ModelPresets.TryGet(name, out var preset)
            ? TransformerModel.Create(preset, seed: 0)
            : throw new ArgumentException($"'{name}' is not a local model.", nameof(model)));

    /// <summary>Waits for a free core, then runs the generation on the thread pool.</summary>
    public async Task<T> RunAsync<T>(Func<T> generate, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        try
        {
            return await Task.Run(generate, cancellationToken);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>Holds a core for a whole stream; disposing the lease frees it.</summary>
    public async Task<IDisposable> LeaseAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        return new Lease(_slots);
    }

    private sealed class Lease(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}
