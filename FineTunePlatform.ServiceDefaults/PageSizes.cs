namespace Microsoft.Extensions.Hosting;

/// <summary>
/// How a list call pages, the same for every list of every service: how many rows (the caller's `limit`, the
/// resource's default when none, never above 100) and in which order (OpenAI's `order`, asc or desc).
/// </summary>
public static class PageSizes
{
    public const int Max = 100;

    public static int Of(int requested, int fallback = 20) => requested <= 0 ? fallback : Math.Min(requested, Max);

    /// <summary>`order` as a list call receives it ("" when absent: the resource's default), or a refusal naming `order`.</summary>
    public static bool Ascending(string? order, bool defaultAscending) => order switch
    {
        null or "" => defaultAscending,
        "asc" => true,
        "desc" => false,
        _ => throw PlatformException.InvalidArgument($"Invalid value for 'order': expected one of 'asc' or 'desc', but got '{order}' instead.", "order", "invalid_value"),
    };
}
