namespace FineTunePlatform.Datasets.Files;

/// <summary>An Uploads API session: parts arrive separately and complete into one file within an hour.</summary>
public sealed class UploadSession
{
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Filename { get; init; }

    public required string Purpose { get; init; }

    public long Bytes { get; init; }

    public string? MimeType { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset ExpiresAt { get; init; }

    public string Status { get; set; } = UploadStatuses.Pending;

    public string? FileId { get; set; }

    public static string NewId() => FineTunePlatform.ServiceDefaults.RandomIds.WithPrefix("upload_");

    public string EffectiveStatus(DateTimeOffset now) => Status == UploadStatuses.Pending && ExpiresAt <= now ? UploadStatuses.Expired : Status;
}

public sealed class UploadPart
{
    public required string Id { get; init; }

    public required string UploadId { get; init; }

    public long Bytes { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>null while the part's content is still streaming in.</summary>
    public DateTimeOffset? CompletedAt { get; set; }

    public static string NewId() => FineTunePlatform.ServiceDefaults.RandomIds.WithPrefix("part_");
}

public static class UploadStatuses
{
    public const string Pending = "pending";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";
    public const string Expired = "expired";
}
