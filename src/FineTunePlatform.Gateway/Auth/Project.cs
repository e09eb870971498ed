using FineTunePlatform.ServiceDefaults;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>A tenant: one per team. Everything a key can reach is scoped to its project.</summary>
public sealed class Project
{
    /// <summary>The project that owns platform-admin keys; it holds no team data.</summary>
    public const string PlatformProjectId = "proj_platform";

    public required string Id { get; init; }

    public required string Name { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Requests per minute across the project's keys; null: the platform default.</summary>
    public int? RequestsPerMinute { get; set; }

    /// <summary>Tokens (prompt + completion budget) per minute across the project's keys; null: the platform default.</summary>
    public int? TokensPerMinute { get; set; }

    public static string NewId() => RandomIds.WithPrefix("proj_");
}
