using System.Security.Cryptography;

namespace FineTunePlatform.Gateway.Auth;

public static class RandomIds
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static string Base62(int length) => RandomNumberGenerator.GetString(Alphabet, length);
}
