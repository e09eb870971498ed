using System.CommandLine;
using System.Text.Json;
using FineTunePlatform.Cli.Output;
using OpenAI.Chat;

namespace FineTunePlatform.Cli.Commands;

/// <summary>`ftune models list|delete` (import and export: <see cref="OpenWeightsCommands"/>) and `ftune chat`: the models a project may call, and calling one.</summary>
public static class ModelCommands
{
    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var list = new Command("list", "List the models this project may call: presets, its fine-tuned models and those shared with it, and which the promotion gate holds back.");
        list.SetAction(async (parse, cancellationToken) =>
        {
            // Plain HTTP, not the SDK: `publication` is our addition to OpenAI's model object.
            var page = await connection.Open(parse).GetAsync("models", cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "OWNED BY", "PUBLICATION"],
                model => [Table.Text(model, "id"), Table.Text(model, "owned_by"), Publication(Table.Text(model, "publication"))]);
            return 0;
        });

        var modelId = new Argument<string>("model");
        var delete = new Command("delete", "Delete a fine-tuned model the project owns.") { modelId };
        delete.SetAction(async (parse, cancellationToken) =>
        {
            var deleted = await connection.Open(parse).OpenAI.GetOpenAIModelClient().DeleteModelAsync(parse.GetValue(modelId)!, cancellationToken);
            await output.ShowAsync(parse, JsonDocument.Parse(deleted.GetRawResponse().Content).RootElement, text => text.WriteLineAsync($"{deleted.Value.ModelId}  deleted"));
            return 0;
        });

        return new Command("models", "Models.") { list, delete, OpenWeightsCommands.Import(connection, output), OpenWeightsCommands.Export(connection, output) };
    }

    /// <summary>What a user can do with the model, in words: held models answer chat with 403 model_not_published.</summary>
    private static string Publication(string publication) => publication switch
    {
        "published" or "-" => "published",
        "pending_evaluation" => "held: evaluation pending",
        "rejected" => "held: did worse than its base",
        _ => $"held: {publication}",
    };

    public static Command Chat(ConnectionOptions connection, CommandOutput output)
    {
        var model = new Argument<string>("model");
        var message = new Argument<string[]>("message") { Description = "The user message (the words are joined).", Arity = ArgumentArity.OneOrMore };
        var system = new Option<string?>("--system") { Description = "A system message before it." };
        var maxTokens = new Option<int?>("--max-tokens");
        var temperature = new Option<float?>("--temperature");
        var store = new Option<bool>("--store") { Description = "Store the completion (store: true) for `ftune completions list|export` and evals." };
        var metadata = CompletionCommands.MetadataOption("Metadata of the stored completion (key=value; repeat for more).");
        var chat = new Command("chat", "Send one message to a model and stream its reply.") { model, message, system, maxTokens, temperature, store, metadata };
        chat.SetAction(async (parse, cancellationToken) =>
        {
            var client = connection.Open(parse).OpenAI.GetChatClient(parse.GetValue(model));
            List<ChatMessage> messages = parse.GetValue(system) is { } instructions ? [new SystemChatMessage(instructions)] : [];
            messages.Add(new UserChatMessage(string.Join(' ', parse.GetValue(message)!)));
            var options = new ChatCompletionOptions { MaxOutputTokenCount = parse.GetValue(maxTokens), Temperature = parse.GetValue(temperature) };
            if (parse.GetValue(store))
            {
                options.StoredOutputEnabled = true;
                foreach (var (key, value) in CompletionCommands.Pairs(parse.GetValue(metadata)))
                {
                    options.Metadata[key] = value;
                }
            }
            if (output.IsJson(parse))
            {
                // A script wants the completion object, not its pieces: one call without streaming.
                var completion = await client.CompleteChatAsync(messages, options, cancellationToken);
                await output.WriteJsonAsync(JsonDocument.Parse(completion.GetRawResponse().Content).RootElement);
                return 0;
            }

            await foreach (var update in client.CompleteChatStreamingAsync(messages, options, cancellationToken))
            {
                foreach (var part in update.ContentUpdate)
                {
                    await output.WriteAsync(part.Text);
                }
            }

            await output.WriteLineAsync();
            return 0;
        });
        return chat;
    }
}
