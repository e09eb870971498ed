using System.Text;

namespace FineTunePlatform.LocalModels;

/// <summary>A chat message as the model sees it; Weight 0 excludes an assistant message from the loss.</summary>
public sealed record ChatTurn(string Role, string Content, double? Weight = null);

/// <summary>
/// Tokens are UTF-8 bytes (0..255) plus one token per chat role and an end-of-turn token, so any text is
/// representable and the vocabulary stays tiny.
/// </summary>
public static class ChatTokens
{
    public const int System = 256;
    public const int User = 257;
    public const int Assistant = 258;
    public const int Tool = 259;
    public const int EndOfTurn = 260;

    /// <summary>Rounded up from 261 so rows stay vector-aligned.</summary>
    public const int VocabularySize = 264;

    public static int RoleToken(string role) => role switch
    {
        "system" or "developer" => System,
        "user" => User,
        "assistant" => Assistant,
        "tool" or "function" => Tool,
        _ => throw new ArgumentException($"Unknown role '{role}'.", nameof(role)),
    };

    /// <summary>
    /// Renders a conversation as `role content end` per message. The returned weights mark the tokens the model
    /// learns to predict: an assistant message's content and its end token, unless its weight is 0.
    /// </summary>
    public static (int[] Tokens, float[] LossWeights) Render(IReadOnlyList<ChatTurn> messages)
    {
        var tokens = new List<int>();
        var weights = new List<float>();
        foreach (var message in messages)
        {
            var learn = message.Role == "assistant" && message.Weight is not 0;
            tokens.Add(RoleToken(message.Role));
            weights.Add(0);
            foreach (var b in Encoding.UTF8.GetBytes(message.Content))
            {
                tokens.Add(b);
                weights.Add(learn ? 1 : 0);
            }

            tokens.Add(EndOfTurn);
            weights.Add(learn ? 1 : 0);
        }

        return ([.. tokens], [.. weights]);
    }

    /// <summary>A prompt for generation: the conversation, then the assistant's role token.</summary>
    public static int[] RenderPrompt(IReadOnlyList<ChatTurn> messages) => [.. Render(messages).Tokens, Assistant];
}
