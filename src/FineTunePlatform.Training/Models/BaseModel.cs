namespace FineTunePlatform.Training.Models;

/// <summary>
/// An open-weight base model a platform admin imported from a Hugging Face directory. Its files are stored by
/// content (<see cref="StoredBlob"/>), so every worker and runtime loads the same bytes whichever replica serves them.
/// </summary>
public sealed class BaseModel
{
    public required string Id { get; init; }

    public required string Architecture { get; init; }

    public long Parameters { get; init; }

    public int ContextLength { get; init; }

    public long WeightBytes { get; init; }

    /// <summary>One hash over the sorted (name, SHA-256) list: the cache key of the whole directory.</summary>
    public required string FilesSha256 { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public List<BaseModelFile> Files { get; init; } = [];
}

/// <summary>One file of an imported directory, by name, with the content it names.</summary>
public sealed class BaseModelFile
{
    public required string ModelId { get; init; }

    public required string Name { get; init; }

    public long Bytes { get; init; }

    public required string Sha256 { get; init; }
}

/// <summary>
/// Content stored completely under its SHA-256 (content_chunks, owner = the hash). The row is written only after
/// the last chunk, so chunks without a row are the remains of an interrupted import and are rewritten.
/// </summary>
public sealed class StoredBlob
{
    public required string Sha256 { get; init; }

    public long Bytes { get; init; }
}
