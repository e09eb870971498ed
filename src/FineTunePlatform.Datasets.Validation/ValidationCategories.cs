namespace FineTunePlatform.Datasets.Validation;

/// <summary>
/// Error categories in reports. The first seven are OpenAI's own (its fine-tuning data checks); the rest are ours
/// for problems OpenAI reports less precisely.
/// </summary>
public static class ValidationCategories
{
    public const string DataType = "data_type";
    public const string MissingMessagesList = "missing_messages_list";
    public const string MessageMissingKey = "message_missing_key";
    public const string MessageUnrecognizedKey = "message_unrecognized_key";
    public const string UnrecognizedRole = "unrecognized_role";
    public const string MissingContent = "missing_content";
    public const string ExampleMissingAssistantMessage = "example_missing_assistant_message";

    public const string InvalidJson = "invalid_json";
    public const string InvalidUtf8 = "invalid_utf8";
    public const string ByteOrderMark = "byte_order_mark";
    public const string EmptyLine = "empty_line";
    public const string LineTooLong = "line_too_long";
    public const string EmptyFile = "empty_file";
    public const string TooFewExamples = "too_few_examples";
    public const string ExampleTooLong = "example_too_long";
    public const string MixedFormats = "mixed_formats";
    public const string UnknownFormat = "unknown_format";
    public const string InvalidWeight = "invalid_weight";
    public const string MissingPreferredOutput = "missing_preferred_output";
    public const string MissingNonPreferredOutput = "missing_non_preferred_output";
    public const string MissingInput = "missing_input";
    public const string InvalidPromptCompletion = "invalid_prompt_completion";
}

/// <summary>What the lines of a file are: detected from the first valid example, required of every other.</summary>
public static class DatasetFormats
{
    public const string Chat = "chat";
    public const string Preference = "preference";
    public const string Completion = "completion";
}
