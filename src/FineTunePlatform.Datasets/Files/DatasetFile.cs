namespace FineTunePlatform.Datasets.Files;

/// <summary>A file owned by a project. Its content lives in chunks (see ChunkStore) and its validation report beside it.</summary>
public sealed class DatasetFile
{
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Filename { get; init; }

    public string Purpose { get; set; } = "";

    public long Bytes { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>null while the content is still streaming in: such files are invisible and swept if abandoned.</summary>
    public DateTimeOffset? CompletedAt { get; set; }

    public string Status { get; set; } = FileStatuses.Uploaded;

    public string? StatusDetails { get; set; }

    public string Sha256 { get; set; } = "";

    public string? Format { get; set; }

    public long ExampleCount { get; set; }

    public long TotalTokens { get; set; }

    public long ErrorCount { get; set; }

    /// <summary>The validation report as JSON (a DatasetReport), null for purposes that are not validated.</summary>
    public string? Report { get; set; }

    public string? BaseModel { get; init; }

    public static string NewId() => FineTunePlatform.ServiceDefaults.RandomIds.WithPrefix("file-");
}

/// <summary>OpenAI's file statuses; the .NET SDK accepts no others.</summary>
public static class FileStatuses
{
    public const string Uploaded = "uploaded";
    public const string Processed = "processed";
    public const string Error = "error";
}

/// <summary>OpenAI's file purposes. fine-tune-results is written by the platform (training results), never uploaded.</summary>
public static class FilePurposes
{
    public const string FineTune = "fine-tune";
    public const string FineTuneResults = "fine-tune-results";
    public const string Evals = "evals";

    public static readonly IReadOnlyList<string> Uploadable = [FineTune, "batch", "assistants", "vision", "user_data", Evals];

    public static bool IsKnown(string purpose) => Uploadable.Contains(purpose) || purpose == FineTuneResults;

    /// <summary>Purposes whose content is JSONL training data, validated line by line.</summary>
    public static bool IsValidated(string purpose) => purpose == FineTune;
}

/// <summary>What a file may be called: stored as given (trimmed), so it must fit the column and be storable text.</summary>
public static class FileNames
{
    public const int MaxLength = 1024;

    /// <summary>The trimmed name, or InvalidArgument naming `param` (PostgreSQL cannot store a NUL character).</summary>
    public static string Check(string? filename, string param)
    {
        var trimmed = filename?.Trim();
        if (string.IsNullOrEmpty(trimmed))
        {
            throw PlatformException.InvalidArgument("The file needs a name.", param);
        }

        return trimmed.Length > MaxLength || trimmed.Any(char.IsControl)
            ? throw PlatformException.InvalidArgument($"A file name is at most {MaxLength} characters, without control characters.", param)
            : trimmed;
    }
}
