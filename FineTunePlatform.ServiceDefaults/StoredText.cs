namespace Microsoft.Extensions.Hosting;

/// <summary>
/// A name a user gives something (a project, a key, an eval), checked before it is stored: it must fit its column,
/// and PostgreSQL's text types cannot hold a NUL character. One rule, so no service answers a 500 for either.
/// </summary>
public static class StoredText
{
    public static bool Fits(string value, int maxLength) => value.Length <= maxLength && !value.Contains('\0', StringComparison.Ordinal);
}
