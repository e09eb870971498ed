using OpenAI.Chat;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>The built-in CPU runtime behind /v1/chat/completions, driven by the OpenAI SDK.</summary>
public sealed class LocalRuntimeTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task A_base_preset_answers_with_usage_and_respects_max_tokens_and_seed()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");
        var chat = fixture.ChatClient(key, "local-nano");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 1f };
#pragma warning disable OPENAI001 // Seed is experimental in the SDK, and part of OpenAI's API.
        options.Seed = 7;
#pragma warning restore OPENAI001

        ChatCompletion first = await chat.CompleteChatAsync([new UserChatMessage("where is my parcel")], options);
        ChatCompletion second = await chat.CompleteChatAsync([new UserChatMessage("where is my parcel")], options);

        Assert.Equal(first.Content[0].Text, second.Content[0].Text);
        Assert.InRange(first.Usage.OutputTokenCount, 1, 12);
        // Prompt tokens are the model's own (BPE with role and end tokens), not bytes.
        Assert.Equal(LocalModels.ModelPresets.Nano.Tokenizer.RenderPrompt([new LocalModels.ChatTurn("user", "where is my parcel")]).Length, first.Usage.InputTokenCount);
        Assert.Equal("local-nano", first.Model);
    }

    [Fact]
    public async Task A_base_preset_streams_deltas_that_add_up_to_the_reply()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key, "local-nano");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16 };
#pragma warning disable OPENAI001
        options.Seed = 3;
#pragma warning restore OPENAI001
        var streamed = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;

        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hello")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        ChatCompletion whole = await chat.CompleteChatAsync([new UserChatMessage("hello")], options);
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
        Assert.NotNull(finish);
        Assert.Equal(whole.Usage.OutputTokenCount, usage!.OutputTokenCount);
    }
}
