namespace Microsoft.Extensions.Hosting;

/// <summary>How many rows a list call returns: the caller's `limit`, the resource's default when none, never above 100.</summary>
public static class PageSizes
{
    public const int Max = 100;

    public static int Of(int requested, int fallback = 20) => requested <= 0 ? fallback : Math.Min(requested, Max);
}
