namespace FineTunePlatform.Datasets.Files;

/// <summary>Size limits, bound from `Datasets:Limits`; over a limit is a 413 and nothing stays stored.</summary>
public sealed class FileLimits
{
    /// <summary>One POST /v1/files upload (OpenAI's limit is 512 MB).</summary>
    public long MaxFileBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>One Uploads API session in total (OpenAI: 8 GB).</summary>
    public long MaxUploadSessionBytes { get; set; } = 8L * 1024 * 1024 * 1024;

    /// <summary>One Uploads API part (OpenAI: 64 MB).</summary>
    public long MaxUploadPartBytes { get; set; } = 64L * 1024 * 1024;

    public TimeSpan UploadSessionLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Stored chunk size: big enough for few rows, small enough to stream.</summary>
    public int ChunkBytes { get; set; } = 1024 * 1024;
}
