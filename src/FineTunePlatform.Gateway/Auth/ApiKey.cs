using FineTunePlatform.ServiceDefaults;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>An API key. Only its SHA-256 is stored; the plaintext is shown once, when the key is created.</summary>
public sealed class ApiKey
{
    public const string Prefix = "sk-ft-";

    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Name { get; set; }

    public required string Role { get; set; }

    public required string Hash { get; init; }

    /// <summary>What the key looks like in listings and error messages: prefix and last four characters.</summary>
    public required string RedactedValue { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ExpiresAt { get; set; }

    public DateTimeOffset? LastUsedAt { get; set; }

    public DateTimeOffset? RevokedAt { get; set; }

    /// <summary>This key's own limits on top of the project's; null: only the project's apply.</summary>
    public int? RequestsPerMinute { get; set; }

    public int? TokensPerMinute { get; set; }

    public bool IsUsableAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);

    public static string NewId() => RandomIds.WithPrefix("key_");

    /// <summary>Creates a key for a project and returns it with its one-time plaintext value.</summary>
    public static (ApiKey Key, string PlaintextValue) Create(string projectId, string name, string role, DateTimeOffset now, DateTimeOffset? expiresAt)
    {
        var plaintext = Prefix + RandomIds.Base62(48);
        return (FromPlaintext(plaintext, projectId, name, role, now, expiresAt), plaintext);
    }

    public static ApiKey FromPlaintext(string plaintext, string projectId, string name, string role, DateTimeOffset now, DateTimeOffset? expiresAt) => new()
    {
        Id = NewId(),
        ProjectId = projectId,
        Name = name,
        Role = role,
        Hash = ApiKeyHasher.Hash(plaintext),
        RedactedValue = ApiKeyHasher.Redact(plaintext),
        CreatedAt = now,
        ExpiresAt = expiresAt,
    };
}
