using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// A Hugging Face tokenizer.json, encoded and decoded by Hugging Face's own Rust tokenizers library (through
/// Tokenizers.DotNet), so token ids are exactly what transformers produces; plus tokenizer_config.json's chat template
/// and special tokens. Two instances of the Rust tokenizer are kept: the file as given (add_special_tokens=True, what
/// a plain tokenizer(text) call does) and one with the post-processor's templates (BOS/EOS insertion) removed
/// (add_special_tokens=False, what apply_chat_template uses: the template writes its own BOS).
/// </summary>
public sealed class HfTokenizer : IDisposable
{
    private readonly Tokenizers.DotNet.Tokenizer _withSpecialTokens;
    private readonly Tokenizers.DotNet.Tokenizer _plain;
    private readonly Dictionary<string, int> _tokenIds;
    private readonly Dictionary<int, string> _addedTokens;

    private HfTokenizer(Tokenizers.DotNet.Tokenizer withSpecialTokens, Tokenizers.DotNet.Tokenizer plain, Dictionary<string, int> tokenIds,
        Dictionary<int, string> addedTokens, IReadOnlyDictionary<string, object?> specialTokens, string? chatTemplate, IReadOnlySet<int> specialIds)
    {
        _addedTokens = addedTokens;
        _withSpecialTokens = withSpecialTokens;
        _plain = plain;
        _tokenIds = tokenIds;
        SpecialTokens = specialTokens;
        ChatTemplate = chatTemplate;
        SpecialTokenIds = specialIds;
        VocabularySize = tokenIds.Count == 0 ? 0 : tokenIds.Values.Max() + 1;
    }

    /// <summary>bos_token, eos_token, unk_token, pad_token (strings) and additional_special_tokens (a list), as apply_chat_template passes them.</summary>
    public IReadOnlyDictionary<string, object?> SpecialTokens { get; }

    /// <summary>The chat template (chat_template.jinja, or tokenizer_config.json's chat_template), or null.</summary>
    public string? ChatTemplate { get; }

    /// <summary>Ids of the added tokens marked special.</summary>
    public IReadOnlySet<int> SpecialTokenIds { get; }

    /// <summary>One more than the largest token id the tokenizer can produce.</summary>
    public int VocabularySize { get; }

    public string? BosToken => SpecialTokens.GetValueOrDefault("bos_token") as string;

    public string? EosToken => SpecialTokens.GetValueOrDefault("eos_token") as string;

    public static HfTokenizer Load(string directory)
    {
        var path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path))
        {
            throw new UnsupportedModelException("tokenizer.json", "tokenizer.json", "is missing; only fast (tokenizer.json) tokenizers are supported.");
        }

        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new UnsupportedModelException("tokenizer.json", "tokenizer.json", "is not a JSON object.");
        }
        catch (JsonException exception)
        {
            throw new UnsupportedModelException("tokenizer.json", "tokenizer.json", $"is not valid JSON ({exception.Message}).");
        }

        var modelType = (json["model"]?["type"] as JsonValue)?.GetValue<string>();
        if (modelType != "BPE")
        {
            throw new UnsupportedModelException("tokenizer.json", "model.type", $"{modelType ?? "(none)"} is not supported; Llama 3, Qwen2 and SmolLM2 use byte-level BPE.");
        }

        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        if (json["model"]?["vocab"] is JsonObject vocab)
        {
            foreach (var (token, id) in vocab)
            {
                ids[token] = id!.GetValue<int>();
            }
        }

        var specialIds = new HashSet<int>();
        var addedTokens = new Dictionary<int, string>();
        if (json["added_tokens"] is JsonArray added)
        {
            foreach (var token in added.OfType<JsonObject>())
            {
                var content = token["content"]!.GetValue<string>();
                var id = token["id"]!.GetValue<int>();
                ids[content] = id;
                addedTokens[id] = content;
                if ((token["special"] as JsonValue)?.GetValue<bool>() == true)
                {
                    specialIds.Add(id);
                }
            }
        }

        var withSpecialTokens = CreateTokenizer(json.ToJsonString());
        json["post_processor"] = WithoutTemplates(json["post_processor"]);
        var plain = CreateTokenizer(json.ToJsonString());
        var (specialTokens, template) = ReadConfig(directory);
        return new HfTokenizer(withSpecialTokens, plain, ids, addedTokens, specialTokens, template, specialIds);
    }

    /// <summary>Token ids of text; addSpecialTokens as in transformers (false: exactly the text's own tokens).</summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        if (text.Length == 0)
        {
            return [];
        }

        // The Rust library takes UTF-8: a lone surrogate (which JSON input can carry) becomes U+FFFD, as a UTF-8
        // round trip makes it, instead of failing the whole text.
        var ids = (addSpecialTokens ? _withSpecialTokens : _plain).Encode(HasLoneSurrogate(text) ? ReplaceLoneSurrogates(text) : text);
        var result = new int[ids.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            result[i] = (int)ids[i];
        }

        return result;
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return true;
            }
        }

        return false;
    }

    private static string ReplaceLoneSurrogates(string text) => System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Text of token ids, special tokens skipped (decode(..., skip_special_tokens=True)).</summary>
    public string Decode(IReadOnlyList<int> ids) => ids.Count == 0 ? "" : _plain.Decode(ids.Select(id => (uint)id).ToArray());

    public int? TokenId(string token) => _tokenIds.TryGetValue(token, out var id) ? id : null;

    /// <summary>An added token's literal text (e.g. "&lt;|im_end|&gt;"), or null for ordinary vocabulary entries (whose strings are byte-level symbols, not text).</summary>
    public string? AddedTokenContent(int id) => _addedTokens.GetValueOrDefault(id);

    public void Dispose()
    {
        _withSpecialTokens.Dispose();
        _plain.Dispose();
    }

    /// <summary>The Rust library takes a path: hand it the JSON through a temporary file it reads at construction.</summary>
    private static Tokenizers.DotNet.Tokenizer CreateTokenizer(string json)
    {
        var temporary = Path.Combine(Path.GetTempPath(), $"ftp-tokenizer-{Guid.NewGuid():N}.json");
        File.WriteAllText(temporary, json);
        try
        {
            return new Tokenizers.DotNet.Tokenizer(temporary);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            throw new UnsupportedModelException("tokenizer.json", "tokenizer.json", $"the tokenizers library refused it: {exception.Message}");
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>The post-processor without the steps that add special tokens (TemplateProcessing, Bert/Roberta): ByteLevel only adjusts offsets.</summary>
    private static JsonNode? WithoutTemplates(JsonNode? processor)
    {
        if (processor is not JsonObject step)
        {
            return null;
        }

        var type = (step["type"] as JsonValue)?.GetValue<string>();
        if (type is "TemplateProcessing" or "BertProcessing" or "RobertaProcessing")
        {
            return null;
        }

        if (type == "Sequence" && step["processors"] is JsonArray steps)
        {
            var kept = steps.Select(WithoutTemplates).Where(node => node is not null).Select(node => node!.DeepClone()).ToArray();
            return kept.Length == 0 ? null : new JsonObject { ["type"] = "Sequence", ["processors"] = new JsonArray(kept) };
        }

        return step.DeepClone();
    }

    private static (Dictionary<string, object?> SpecialTokens, string? Template) ReadConfig(string directory)
    {
        var special = new Dictionary<string, object?>();
        string? template = null;
        var configPath = Path.Combine(directory, "tokenizer_config.json");
        if (File.Exists(configPath))
        {
            JsonObject config;
            try
            {
                config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? [];
            }
            catch (JsonException exception)
            {
                throw new UnsupportedModelException("tokenizer_config.json", "tokenizer_config.json", $"is not valid JSON ({exception.Message}).");
            }

            foreach (var name in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
            {
                // A token is a string or an AddedToken object {"content": ...}.
                var node = config[name];
                var content = node is JsonObject token ? token["content"]?.GetValue<string>() : (node as JsonValue)?.TryGetValue<string>(out var text) == true ? text : null;
                if (content is not null)
                {
                    special[name] = content;
                }
            }

            if (config["additional_special_tokens"] is JsonArray additional)
            {
                special["additional_special_tokens"] = additional.Select(node => (object?)(node is JsonObject o ? o["content"]?.GetValue<string>() : node?.GetValue<string>())).ToList();
            }

            template = config["chat_template"] switch
            {
                JsonValue value => value.GetValue<string>(),
                // A list of named templates: the "default" one is the chat template.
                JsonArray named => named.OfType<JsonObject>().FirstOrDefault(t => t["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
                _ => null,
            };
        }

        // Newer transformers save the template beside the config.
        var jinja = Path.Combine(directory, "chat_template.jinja");
        if (File.Exists(jinja))
        {
            template = File.ReadAllText(jinja);
        }

        return (special, template);
    }
}
