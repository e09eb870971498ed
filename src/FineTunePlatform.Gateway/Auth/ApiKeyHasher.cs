using System.Security.Cryptography;
using System.Text;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Keys are 48 random base62 characters (~285 bits), so a single SHA-256 is enough: there is nothing to
/// brute-force, and a slow password hash would add milliseconds to every request.
/// </summary>
public static class ApiKeyHasher
{
    public static string Hash(string plaintext) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(plaintext)));

    public static string Redact(string plaintext) =>
        plaintext.Length <= 10 ? "sk-ft-***" : $"{plaintext[..6]}...{plaintext[^4..]}";
}
