namespace FineTunePlatform.ServiceDefaults.Storage;

/// <summary>About 1 MiB of stored content (a file, an upload part, a checkpoint), in order by Index.</summary>
public sealed class ContentChunk
{
    public required string OwnerId { get; init; }

    public int Index { get; init; }

    public required byte[] Data { get; init; }
}
