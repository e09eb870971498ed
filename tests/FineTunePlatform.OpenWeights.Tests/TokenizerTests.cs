using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>
/// Tokenization through Hugging Face's own Rust library (Tokenizers.DotNet) on a small real Qwen-derived tokenizer:
/// hand-verified cases from its merge list, the special-token switch, and a cross-check against the other candidate,
/// Microsoft.ML.Tokenizers, configured by hand to the same pipeline.
/// </summary>
public sealed class TokenizerTests : IDisposable
{
    private readonly HfTokenizer _tokenizer = HfTokenizer.Load(Fixtures.TokenizerDirectory);

    public void Dispose() => _tokenizer.Dispose();

    [Theory]
    // " the": Ġ t h e → merges (Ġ,t) rank 3, (Ġt,h), then (Ġth,e) rank 23 → Ġthe, id 279.
    [InlineData(" the", new[] { 279 })]
    // " world": the merges end in (Ġw,orld) rank 1623 → id 1879.
    [InlineData(" world", new[] { 1879 })]
    // Two newlines are one pre-token (\s*[\r\n]+) merged by (Ċ,Ċ) rank 15 → id 271.
    [InlineData("\n\n", new[] { 271 })]
    // Qwen's regex splits digits one by one (\p{N}): '1' and '2' are the byte tokens 16 and 17.
    [InlineData("12", new[] { 16, 17 })]
    // "in" is merge rank 2 → id 258; special tokens are matched before the model runs.
    [InlineData("<|im_start|>in<|im_end|>", new[] { Fixtures.ImStart, 258, Fixtures.ImEnd })]
    public void Hand_verified_ids_from_the_fixture_merge_list(string text, int[] expected) =>
        Assert.Equal(expected, _tokenizer.Encode(text));

    [Fact]
    public void Decoding_round_trips_text_and_skips_special_tokens()
    {
        const string text = "Hello, wörld! 12 + 30 = 42\n\tdone 🙂";
        Assert.Equal(text, _tokenizer.Decode(_tokenizer.Encode(text)));
        Assert.Equal("hi", _tokenizer.Decode(_tokenizer.Encode("<|im_start|>hi<|im_end|>")));
    }

    [Fact]
    public void Add_special_tokens_follows_the_post_processor_and_is_off_for_templates()
    {
        var directory = Directory.CreateTempSubdirectory("openweights-bos-").FullName;
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.TokenizerDirectory, "tokenizer.json")))!.AsObject();
        json["post_processor"] = JsonNode.Parse("""
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [3259], "tokens": ["<|begin_of_text|>"]}}}
            """);
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), json.ToJsonString());
        using var tokenizer = HfTokenizer.Load(directory);
        Assert.Equal([Fixtures.BeginOfText, 279], tokenizer.Encode(" the", addSpecialTokens: true));
        Assert.Equal([279], tokenizer.Encode(" the"));
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Microsoft_ml_tokenizers_set_up_by_hand_for_the_same_pipeline_agrees_on_a_varied_corpus()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.TokenizerDirectory, "tokenizer.json")))!;
        var vocabulary = json["model"]!["vocab"]!.AsObject().ToDictionary(entry => entry.Key, entry => entry.Value!.GetValue<int>());
        var merges = json["model"]!["merges"]!.AsArray().Select(merge => merge is JsonArray pair ? pair[0]!.GetValue<string>() + " " + pair[1]!.GetValue<string>() : merge!.GetValue<string>()).ToList();
        var special = json["added_tokens"]!.AsArray().ToDictionary(token => token!["content"]!.GetValue<string>(), token => token!["id"]!.GetValue<int>());
        var pattern = json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"]!.GetValue<string>();
        var other = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = special,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), special),
            Normalizer = new NfcNormalizer(),
        });

        string[] pieces = ["a", "b", "the", " ", "X", "Z", "1", "23", "456", ",", ".", "!", "?", "'", "\n", "\t", "é", "ü", "中文", "🙂", "-", "_", "(", ")", "\"", "'s", "'t", "'re", "  ", "\r\n", "ﬁ", "e\u0301", "\u00A0", "<|im_end|>", "don't", "HELLO"];
        var random = new Random(5);
        var corpus = Enumerable.Range(0, 500).Select(_ => string.Concat(Enumerable.Range(0, random.Next(1, 30)).Select(_ => pieces[random.Next(pieces.Length)]))).ToList();
        foreach (var text in corpus)
        {
            Assert.Equal(other.EncodeToIds(text).ToArray(), _tokenizer.Encode(text));
        }
    }

    private sealed class NfcNormalizer : Normalizer
    {
        public override string Normalize(string original) => original.Normalize(System.Text.NormalizationForm.FormC);

        public override string Normalize(ReadOnlySpan<char> original) => original.ToString().Normalize(System.Text.NormalizationForm.FormC);
    }
}

/// <summary>Conversations to training tokens: loss only on the assistant's tokens, honouring weight.</summary>
public sealed class ChatFormatterTests
{
    [Fact]
    public void Chatml_weights_cover_each_assistant_reply_and_its_im_end_only()
    {
        using var tokenizer = HfTokenizer.Load(Fixtures.TokenizerWithTemplate("qwen2_5", "", "<|im_end|>"));
        var formatter = new ChatFormatter(tokenizer);
        var messages = new[]
        {
            new ChatMessage("user", "in the"),
            new ChatMessage("assistant", " the world"),
            new ChatMessage("user", "again"),
            new ChatMessage("assistant", "in", Weight: 0),
            new ChatMessage("user", "last"),
            new ChatMessage("assistant", "12"),
        };
        var sequence = formatter.EncodeForTraining(messages);
        Assert.Equal(tokenizer.Encode(formatter.Render(messages, addGenerationPrompt: false)), sequence.Tokens);

        var learned = sequence.Tokens.Where((_, i) => sequence.Weights[i] != 0).ToArray();
        // " the world" + <|im_end|>, then "12" + <|im_end|>; the weight-0 reply and all template text are not learned.
        Assert.Equal([279, 1879, Fixtures.ImEnd, 16, 17, Fixtures.ImEnd], learned);
        // The prompt the model is served is exactly the tokens before its first reply.
        var prompt = formatter.EncodePrompt(messages.Take(1).ToList());
        Assert.Equal(prompt, sequence.Tokens.Take(prompt.Length));
        Assert.Equal(1f, sequence.Weights[prompt.Length]);
        Assert.Equal(0f, sequence.Weights[prompt.Length - 1]);
    }

    [Fact]
    public void Llama3_weights_cover_the_reply_and_eot_and_the_template_writes_one_bos()
    {
        using var tokenizer = HfTokenizer.Load(Fixtures.TokenizerWithTemplate("llama3", "<|begin_of_text|>", "<|eot_id|>"));
        var formatter = new ChatFormatter(tokenizer, stopTokenIds: [Fixtures.EotId, Fixtures.EndOfTextLlama]);
        var sequence = formatter.EncodeForTraining([new ChatMessage("system", "be brief"), new ChatMessage("user", "in"), new ChatMessage("assistant", " the ")]);
        Assert.Equal(Fixtures.BeginOfText, sequence.Tokens[0]);
        Assert.Equal(1, sequence.Tokens.Count(token => token == Fixtures.BeginOfText));
        // The template trims the content: " the " is rendered "the".
        var learned = sequence.Tokens.Where((_, i) => sequence.Weights[i] != 0).ToArray();
        Assert.Equal([.. tokenizer.Encode("the"), Fixtures.EotId], learned);
        Assert.Equal(Fixtures.EotId, sequence.Tokens[^1]);
    }

    [Fact]
    public void A_template_whose_generation_prompt_is_not_a_prefix_is_refused_not_guessed()
    {
        using var tokenizer = HfTokenizer.Load(Fixtures.TokenizerWithTemplate("smollm2", "", "<|im_end|>"));
        var formatter = new ChatFormatter(tokenizer, "{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>{% endif %}");
        Assert.Throws<ArgumentException>(() => formatter.EncodeForTraining([new ChatMessage("user", "a"), new ChatMessage("assistant", "b")]));
    }
}

public sealed class TokenizerInputTests
{
    [Fact]
    public void A_lone_surrogate_is_encoded_as_the_replacement_character_not_an_error()
    {
        using var tokenizer = HfTokenizer.Load(Fixtures.TokenizerDirectory);
        Assert.Equal(tokenizer.Encode("a\uFFFDb"), tokenizer.Encode("a\uD800b"));
    }
}
