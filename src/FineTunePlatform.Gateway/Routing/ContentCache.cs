namespace FineTunePlatform.Gateway.Routing;

/// <summary>
/// Values loaded once by the first request that needs them and kept by content key (a SHA-256, which never changes),
/// the `capacity` most recently used; a failed load is forgotten so the next request tries again. Both in-process
/// runtimes keep their weights in one: the built-in models' checkpoints, the open-weight bases and adapters.
/// </summary>
internal sealed class ContentCache<T>(int capacity)
{
    private readonly LinkedList<(string Key, Lazy<Task<T>> Load)> _recentlyUsed = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, Lazy<Task<T>> Load)>> _entries = [];

    public async Task<T> GetAsync(string key, Func<Task<T>> load, CancellationToken cancellationToken)
    {
        Lazy<Task<T>> entry;
        lock (_entries)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                _recentlyUsed.Remove(node);
                _recentlyUsed.AddFirst(node);
                entry = node.Value.Load;
            }
            else
            {
                entry = new Lazy<Task<T>>(() => Task.Run(load));
                _entries[key] = _recentlyUsed.AddFirst((key, entry));
                while (_entries.Count > capacity)
                {
                    var last = _recentlyUsed.Last!.Value;
                    _entries.Remove(last.Key);
                    // Requests already using an evicted value keep it alive until they end; then the GC has it.
                    _recentlyUsed.RemoveLast();
                }
            }
        }

        try
        {
            // The load goes on for the requests still waiting when this one gives up.
            return await entry.Value.WaitAsync(cancellationToken);
        }
        catch (Exception) when (entry.Value.IsFaulted)
        {
            lock (_entries)
            {
                if (_entries.TryGetValue(key, out var node) && node.Value.Load == entry)
                {
                    _entries.Remove(key);
                    _recentlyUsed.Remove(node);
                }
            }

            throw;
        }
    }
}
