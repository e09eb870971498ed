using FineTunePlatform.ServiceDefaults.Storage;

namespace FineTunePlatform.Training.Tests;

/// <summary>The machine's cache of base-model directories stays within its budget, least recently used first.</summary>
public sealed class BaseModelCacheTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("ftp-base-cache-").FullName;

    [Fact]
    public void Pruning_deletes_the_least_recently_used_until_the_rest_fit_and_spares_the_one_asked_for_and_recent_ones()
    {
        var now = DateTime.UtcNow;
        var oldest = Cached("aaa", 400, now.AddDays(-3));
        var older = Cached("bbb", 400, now.AddDays(-2));
        var old = Cached("ccc", 400, now.AddDays(-1));
        var recent = Cached("ddd", 400, now.AddMinutes(-1));
        var asked = Cached("eee", 400, now.AddDays(-4));
        Directory.CreateDirectory(Path.Combine(_root, ".fff-partial"));

        BaseModelDirectories.Prune(_root, budgetBytes: 1_300, keep: asked, now);

        // 2,000 bytes cached: the two least recently used (apart from the one asked for) go, 1,200 stay.
        Assert.False(Directory.Exists(oldest));
        Assert.False(Directory.Exists(older));
        Assert.True(Directory.Exists(old));
        Assert.True(Directory.Exists(recent));
        Assert.True(Directory.Exists(asked));
        Assert.True(Directory.Exists(Path.Combine(_root, ".fff-partial")), "a download in progress is not the cache's");

        // Used within the grace period, nothing goes even over budget.
        BaseModelDirectories.Prune(_root, budgetBytes: 0, keep: asked, now.AddDays(-1).AddMinutes(5));
        Assert.True(Directory.Exists(old));
        Assert.True(Directory.Exists(recent));
    }

    private string Cached(string name, int bytes, DateTime used)
    {
        var directory = Directory.CreateDirectory(Path.Combine(_root, name)).FullName;
        File.WriteAllBytes(Path.Combine(directory, "model.safetensors"), new byte[bytes]);
        var marker = Path.Combine(directory, ".last-used");
        File.WriteAllBytes(marker, []);
        File.SetLastWriteTimeUtc(marker, used);
        return directory;
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
