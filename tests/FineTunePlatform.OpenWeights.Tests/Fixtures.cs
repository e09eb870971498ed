namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>Paths of the committed fixtures (see fixtures/README.md for where each came from).</summary>
internal static class Fixtures
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string TokenizerDirectory => Path.Combine(Root, "tokenizer");

    public static string Template(string name) => File.ReadAllText(Path.Combine(Root, "templates", name + ".jinja"));

    /// <summary>The mini tokenizer's special tokens, as ids (see make_tokenizer_fixture.py).</summary>
    public const int EndOfText = 3256, ImStart = 3257, ImEnd = 3258, BeginOfText = 3259, EndOfTextLlama = 3260, StartHeader = 3261, EndHeader = 3262, EotId = 3263;

    /// <summary>A tokenizer directory: the mini tokenizer.json and a tokenizer_config.json with the given template and special tokens.</summary>
    public static string TokenizerWithTemplate(string templateName, string bos, string eos)
    {
        var directory = Directory.CreateTempSubdirectory("openweights-tokenizer-").FullName;
        File.Copy(Path.Combine(TokenizerDirectory, "tokenizer.json"), Path.Combine(directory, "tokenizer.json"));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["bos_token"] = bos,
            ["eos_token"] = eos,
            ["pad_token"] = "<|endoftext|>",
            ["chat_template"] = Template(templateName),
        }));
        return directory;
    }
}
