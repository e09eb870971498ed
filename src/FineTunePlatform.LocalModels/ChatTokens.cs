namespace FineTunePlatform.LocalModels;

/// <summary>A chat message as the model sees it; Weight 0 excludes an assistant message from the loss.</summary>
public sealed record ChatTurn(string Role, string Content, double? Weight = null);

/// <summary>
/// The tokens every tokenizer shares beside the 256 byte values: one per chat role and an end-of-turn token. A
/// conversation is rendered by the model's <see cref="ChatTokenizer"/>.
/// </summary>
public static class ChatTokens
{
    public const int System = 256;
    public const int User = 257;
    public const int Assistant = 258;
    public const int Tool = 259;
    public const int EndOfTurn = 260;

    public static int RoleToken(string role) => role switch
    {
        "system" or "developer" => System,
        "user" => User,
        "assistant" => Assistant,
        "tool" or "function" => Tool,
        _ => throw new ArgumentException($"Unknown role '{role}'.", nameof(role)),
    };
}
