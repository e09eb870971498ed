namespace FineTunePlatform.Datasets.Storage;

/// <summary>About 1 MiB of a file's (or an upload part's) content, in order by Index.</summary>
public sealed class ContentChunk
{
    public required string OwnerId { get; init; }

    public int Index { get; init; }

    public required byte[] Data { get; init; }
}
