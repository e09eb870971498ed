namespace Microsoft.Extensions.Hosting;

/// <summary>
/// OpenAI's limits on a resource's `metadata` (16 pairs, keys 1–64 characters, values up to 512), checked the same
/// way by every service that stores metadata. NUL characters are refused too: PostgreSQL cannot store them.
/// </summary>
public static class MetadataLimits
{
    public const int MaxPairs = 16;

    public static void Check(IDictionary<string, string> metadata)
    {
        if (metadata.Count > MaxPairs)
        {
            throw PlatformException.InvalidArgument($"'metadata' may hold at most {MaxPairs} pairs.", "metadata");
        }

        foreach (var (key, value) in metadata)
        {
            if (key.Length is 0 or > 64 || value.Length > 512)
            {
                throw PlatformException.InvalidArgument("'metadata' keys must be 1 to 64 characters and values at most 512.", "metadata");
            }

            if (key.Contains('\0', StringComparison.Ordinal) || value.Contains('\0', StringComparison.Ordinal))
            {
                throw PlatformException.InvalidArgument("'metadata' keys and values cannot contain NUL characters.", "metadata");
            }
        }
    }
}
