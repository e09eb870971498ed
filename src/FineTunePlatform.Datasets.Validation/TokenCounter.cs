using Microsoft.ML.Tokenizers;

namespace FineTunePlatform.Datasets.Validation;

/// <summary>
/// o200k_base token counts with OpenAI's chat accounting: every message costs 3 tokens of framing plus its role and
/// content (a name adds 1 more), and every example 3 more for the primed assistant reply.
/// </summary>
public sealed class TokenCounter
{
    public const int TokensPerMessage = 3;
    public const int TokensPerName = 1;
    public const int TokensPerReplyPriming = 3;

    // Loading the vocabulary takes ~1 s: one shared, thread-safe instance per process.
    private static readonly Lazy<Tokenizer> SharedTokenizer = new(() => TiktokenTokenizer.CreateForModel("gpt-4o"));

    public static TokenCounter Shared { get; } = new();

    private readonly Dictionary<string, int> _roleTokens = new[] { "system", "user", "assistant", "tool", "function" }
        .ToDictionary(role => role, role => SharedTokenizer.Value.CountTokens(role));

    public int Count(string text) => text.Length == 0 ? 0 : SharedTokenizer.Value.CountTokens(text);

    /// <summary>Roles are counted once per process, not once per message.</summary>
    public int CountRole(string role) => _roleTokens.TryGetValue(role, out var count) ? count : Count(role);
}
