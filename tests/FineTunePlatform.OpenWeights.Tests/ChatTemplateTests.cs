using System.Text.Json;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>
/// Our Jinja interpreter against Python's jinja2 set up as transformers' apply_chat_template sets it up, on the real
/// templates of SmolLM2, Qwen2.5, Llama 3 and Qwen3: byte-identical prompts with and without the generation prompt.
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly Dictionary<string, object?> ChatMlTokens = new() { ["bos_token"] = null, ["eos_token"] = "<|im_end|>", ["pad_token"] = "<|endoftext|>" };
    private static readonly Dictionary<string, object?> Llama3Tokens = new() { ["bos_token"] = "<|begin_of_text|>", ["eos_token"] = "<|eot_id|>" };

    public static IEnumerable<(string Template, Dictionary<string, object?> Tokens)> Templates =>
    [
        ("smollm2", ChatMlTokens),
        ("qwen2_5", ChatMlTokens),
        ("llama3", Llama3Tokens),
        ("qwen3", ChatMlTokens),
    ];

    public static IReadOnlyList<List<Dictionary<string, object?>>> Conversations =>
    [
        [Message("user", "Hello!")],
        [Message("system", "You are terse."), Message("user", "Where is my parcel?"), Message("assistant", "In transit."), Message("user", "When?")],
        [Message("user", "  spaces around  \n"), Message("assistant", "\nnewlines\n\n"), Message("user", "ünïcödé 你好 🙂 'quotes' \"double\" {{ not a tag }}")],
        [Message("system", "a"), Message("system", "second system"), Message("user", "b"), Message("assistant", "<think>\nhmm\n</think>\n\nanswer")],
        [Message("user", "tab\tand \\backslash"), Message("assistant", ""), Message("user", "empty reply above")],
    ];

    private static Dictionary<string, object?> Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    [Fact]
    public void Real_chat_templates_render_byte_identical_to_jinja2_as_apply_chat_template_runs_it()
    {
        var cases = new List<(string Template, Dictionary<string, object?> Variables, List<Dictionary<string, object?>> Messages, bool Generation)>();
        foreach (var (template, tokens) in Templates)
        {
            foreach (var conversation in Conversations)
            {
                cases.Add((template, tokens, conversation, true));
                cases.Add((template, tokens, conversation, false));
            }
        }

        var input = Path.Combine(Path.GetTempPath(), $"templates-{Guid.NewGuid():N}.json");
        File.WriteAllText(input, JsonSerializer.Serialize(cases.Select(c => new Dictionary<string, object?>
        {
            ["template"] = Fixtures.Template(c.Template),
            ["messages"] = c.Messages,
            ["add_generation_prompt"] = c.Generation,
            ["variables"] = c.Variables,
        })));
        var expected = JsonDocument.Parse(PythonReference.RunScript("render_chat_templates.py", input)).RootElement.EnumerateArray().ToList();
        File.Delete(input);

        for (var i = 0; i < cases.Count; i++)
        {
            var (template, variables, messages, generation) = cases[i];
            Assert.Equal(JsonValueKind.String, expected[i].ValueKind);
            var ours = JinjaTemplate.Parse(Fixtures.Template(template)).Render(new Dictionary<string, object?>(variables)
            {
                ["messages"] = messages,
                ["add_generation_prompt"] = generation,
            });
            Assert.True(expected[i].GetString() == ours, $"{template}, conversation {i / 2}, add_generation_prompt={generation}:\njinja2: {JsonSerializer.Serialize(expected[i].GetString())}\nours:   {JsonSerializer.Serialize(ours)}");
        }
    }

    [Fact]
    public void Chatml_renders_the_prompt_smollm2_expects()
    {
        var text = JinjaTemplate.Parse(Fixtures.Template("smollm2")).Render(new Dictionary<string, object?>
        {
            ["messages"] = new List<object?> { Message("user", "Hi") },
            ["add_generation_prompt"] = true,
        });
        Assert.Equal("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", text);
    }

    [Fact]
    public void Llama3_trims_content_and_starts_with_bos()
    {
        var text = JinjaTemplate.Parse(Fixtures.Template("llama3")).Render(new Dictionary<string, object?>(Llama3Tokens)
        {
            ["messages"] = new List<object?> { Message("system", " be brief "), Message("user", "Hi\n") },
            ["add_generation_prompt"] = true,
        });
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nbe brief<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", text);
    }

    [Theory]
    [InlineData("{{ 'a' }}\n  {% if true %}\n    x\n  {% endif %}\n", "a\n    x\n")]
    [InlineData("{%- for i in range(3) -%} {{ i }}, {%- endfor %}", "0,1,2,")]
    [InlineData("{% for m in ['a','b','c'] %}{{ loop.index0 }}{{ m }}{% if not loop.last %}-{% endif %}{% endfor %}", "0a-1b-2c")]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1")]
    [InlineData("{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}", "2")]
    [InlineData("{{ [1,2,3][::-1] }} {{ 'abc'[1:] }} {{ 'abc'[-1] }}", "[3, 2, 1] bc c")]
    [InlineData("{{ {'a': [1, 'x', none, true]} | tojson }}", "{\"a\": [1, \"x\", null, true]}")]
    [InlineData("{{ 'x' if none is none else 'y' }}{{ undefined_name is defined }}{{ 3 // 2 }}{{ 7 % 3 }}{{ 'a' ~ 1 }}", "xFalse11a1")]
    [InlineData("{{ ' a b '.strip().split(' ') | length }}{{ 'ab'.startswith('a') }}{{ 'x' in 'xyz' }}{{ 2 not in [1] }}", "2TrueTrueTrue")]
    [InlineData("{# comment #}\n{%- if false %}no{% elif 1 > 0 %}yes{% else %}never{% endif %}", "yes")]
    [InlineData("{% for i in [1,2,3,4] if i is even %}{{ i }}{% else %}none{% endfor %}{% for i in [] %}x{% else %}empty{% endfor %}", "24empty")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;")]
    [InlineData("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", "02")]
    public void Jinja_semantics_that_chat_templates_rely_on(string template, string expected) =>
        Assert.Equal(expected, JinjaTemplate.Parse(template).Render(new Dictionary<string, object?>()));

    [Theory]
    [InlineData("{% macro m() %}{% endmacro %}")]
    [InlineData("{{ x | nosuchfilter }}")]
    [InlineData("{% if x %}")]
    [InlineData("{{ raise_exception('no system messages') }}")]
    [InlineData("{{ missing.attribute }}")]
    public void What_is_outside_the_subset_or_fails_is_refused_not_misrendered(string template) =>
        Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(template).Render(new Dictionary<string, object?>()));
}
