using System.Security.Cryptography;

namespace FineTunePlatform.ServiceDefaults;

/// <summary>Random identifiers and secrets, the one way every service makes them (ids keep OpenAI's prefixes).</summary>
public static class RandomIds
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string Base62(int length) => RandomNumberGenerator.GetString(Alphabet, length);

    /// <summary>An id with OpenAI's shape: a prefix ("file-", "ftjob-", "upload_") and 24 base62 characters.</summary>
    public static string WithPrefix(string prefix) => prefix + Base62(24);
}
