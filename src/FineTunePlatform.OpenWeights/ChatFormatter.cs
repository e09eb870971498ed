namespace FineTunePlatform.OpenWeights;

/// <summary>One chat message; Weight is OpenAI's per-message `weight` on assistant messages (0 or 1; null means 1).</summary>
public sealed record ChatMessage(string Role, string Content, double? Weight = null);

/// <summary>
/// Renders conversations through the model's chat template exactly as apply_chat_template does, and tokenizes them
/// for training with a weight per token: the assistant's tokens (its content and the end-of-turn token that closes
/// it) weigh the message's `weight`, everything else 0.
/// </summary>
public sealed class ChatFormatter
{
    private readonly HfTokenizer _tokenizer;
    private readonly JinjaTemplate _template;
    private readonly IReadOnlyList<string> _stopTexts;

    /// <param name="tokenizer">The model's tokenizer (its special tokens feed the template).</param>
    /// <param name="template">The chat template source; the tokenizer's own when null.</param>
    /// <param name="stopTokenIds">The tokens that end an assistant turn (generation_config's eos_token_id); the tokenizer's eos_token when empty.</param>
    public ChatFormatter(HfTokenizer tokenizer, string? template = null, IReadOnlyList<int>? stopTokenIds = null)
    {
        _tokenizer = tokenizer;
        var source = template ?? tokenizer.ChatTemplate ?? throw new UnsupportedModelException("tokenizer_config.json", "chat_template", "is missing: the model has no chat template.");
        try
        {
            _template = JinjaTemplate.Parse(source);
        }
        catch (TemplateException exception)
        {
            throw new UnsupportedModelException("tokenizer_config.json", "chat_template", exception.Message);
        }

        StopTokenIds = stopTokenIds is { Count: > 0 } ? stopTokenIds
            : tokenizer.EosToken is { } eos && tokenizer.TokenId(eos) is { } id ? [id] : [];
        if (StopTokenIds.Count == 0)
        {
            throw new UnsupportedModelException("generation_config.json", "eos_token_id", "no end-of-turn token is known (neither generation_config.json's eos_token_id nor tokenizer_config.json's eos_token).");
        }

        // An end-of-turn token is an added token; its literal text is what the template writes.
        _stopTexts = StopTokenIds.Select(stop => tokenizer.AddedTokenContent(stop) ?? "").Where(text => text.Length > 0).ToList();
    }

    public HfTokenizer Tokenizer => _tokenizer;

    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>The template's text for the messages, as apply_chat_template(messages, tokenize=False, add_generation_prompt=...).</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var variables = new Dictionary<string, object?>(_tokenizer.SpecialTokens)
        {
            ["messages"] = messages.Select(message => (object?)new Dictionary<string, object?> { ["role"] = message.Role, ["content"] = message.Content }).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        try
        {
            return _template.Render(variables);
        }
        catch (TemplateException exception)
        {
            throw new ArgumentException($"The chat template cannot render this conversation: {exception.Message}", nameof(messages), exception);
        }
    }

    /// <summary>The prompt's token ids for generating the next assistant message.</summary>
    public int[] EncodePrompt(IReadOnlyList<ChatMessage> messages) => _tokenizer.Encode(Render(messages, addGenerationPrompt: true));

    /// <summary>
    /// Tokens of the whole conversation and each token's loss weight. Assistant message i's span starts where
    /// render(messages[..i], add_generation_prompt) ends (the template must render that prompt as a prefix of the whole
    /// conversation, as ChatML and Llama 3's do) and ends after the first end-of-turn token that follows it: the
    /// model learns the reply and when to stop, not the template's text after it.
    /// </summary>
    public TrainingSequence EncodeForTraining(IReadOnlyList<ChatMessage> messages)
    {
        var full = Render(messages, addGenerationPrompt: false);
        var tokens = _tokenizer.Encode(full);
        var weights = new float[tokens.Length];
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant")
            {
                continue;
            }

            var weight = (float)(messages[i].Weight ?? 1);
            var prompt = Render(messages.Take(i).ToList(), addGenerationPrompt: true);
            if (!full.StartsWith(prompt, StringComparison.Ordinal))
            {
                throw new ArgumentException($"The chat template does not render message {i}'s generation prompt as a prefix of the conversation, so its tokens cannot be located.", nameof(messages));
            }

            var start = prompt.Length;
            var end = full.Length;
            foreach (var stop in _stopTexts)
            {
                var at = full.IndexOf(stop, start, StringComparison.Ordinal);
                if (at >= 0)
                {
                    end = Math.Min(end, at + stop.Length);
                }
            }

            var first = TokenBoundary(full, start, tokens);
            var last = TokenBoundary(full, end, tokens);
            for (var t = first; t < last; t++)
            {
                weights[t] = weight;
            }
        }

        return new TrainingSequence(tokens, weights);
    }

    /// <summary>
    /// How many of the conversation's tokens the text before `offset` covers: the tokens of text[..offset] when they are
    /// a prefix of the whole's (always at the special tokens that delimit turns); otherwise the common prefix, so a token
    /// straddling the boundary counts with what precedes it.
    /// </summary>
    private int TokenBoundary(string text, int offset, int[] tokens)
    {
        if (offset >= text.Length)
        {
            return tokens.Length;
        }

        var prefix = _tokenizer.Encode(text[..offset]);
        var common = 0;
        while (common < prefix.Length && common < tokens.Length && prefix[common] == tokens[common])
        {
            common++;
        }

        return common;
    }
}
