using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Cli;
using FineTunePlatform.OpenWeights;
using OpenAI.Chat;
using LibraryMessage = FineTunePlatform.OpenWeights.ChatMessage;

namespace FineTunePlatform.Training.Tests;

/// <summary>The platform with one trainer worker (one short LoRA job is exported) and one tiny open-weight model directory on disk.</summary>
public sealed class OpenWeightsServingFixture : IAsyncLifetime
{
    public TrainingPlatform Platform { get; private set; } = null!;

    /// <summary>A member key of an ordinary project: imported bases are every project's.</summary>
    public string TeamKey { get; private set; } = null!;

    public string Scratch { get; } = Directory.CreateTempSubdirectory("ftp-ow-serving-").FullName;

    public string ModelDirectory { get; private set; } = null!;

    /// <summary>The same directory loaded by the library itself: what every answer is compared with.</summary>
    public HuggingFaceModel Reference { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        ModelDirectory = TinyOpenWeightsModel.Write(Path.Combine(Scratch, "tiny"));
        Reference = HuggingFaceModel.Load(ModelDirectory);
        Platform = await TrainingPlatform.StartAsync("openweights-serving", workers: 1);
        TeamKey = (await Platform.Admin.CreateProjectAsync("member")).Key;
    }

    public async Task DisposeAsync()
    {
        await Platform.DisposeAsync();
        Reference.Dispose();
        Directory.Delete(Scratch, recursive: true);
    }
}

/// <summary>
/// Importing an open-weight base through the gateway (HTTP and ftune), serving it in chat completions through the
/// official SDK with exactly the library's tokens, and what import, delete and export refuse.
/// </summary>
public sealed class OpenWeightsServingTests(OpenWeightsServingFixture fixture) : IClassFixture<OpenWeightsServingFixture>
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task An_imported_base_is_listed_for_every_project_and_answers_chat_as_the_library_does()
    {
        var id = NewId("tiny-chat");
        using var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id);
        var model = await JsonOfAsync(imported);
        Assert.True(imported.StatusCode == HttpStatusCode.OK, model.ToJsonString());
        Assert.Equal(id, model["id"]!.GetValue<string>());
        Assert.Equal("model", model["object"]!.GetValue<string>());
        Assert.Equal("system", model["owned_by"]!.GetValue<string>());
        Assert.Equal("LlamaForCausalLM", model["open_weights"]!["architecture"]!.GetValue<string>());
        Assert.Equal(fixture.Reference.Model.ParameterCount, model["open_weights"]!["parameters"]!.GetValue<long>());
        Assert.Equal(512, model["open_weights"]!["context_length"]!.GetValue<int>());

        using var http = Platform.Http(fixture.TeamKey);
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray().Single(entry => entry!["id"]!.GetValue<string>() == id)!;
        Assert.Equal("system", listed["owned_by"]!.GetValue<string>());
        Assert.Equal("published", listed["publication"]!.GetValue<string>());
        Assert.Equal(id, listed["open_weights"]!["base_model"]!.GetValue<string>());
        // OpenAI's own models carry no open_weights.
        Assert.Null(JsonNode.Parse(await http.GetStringAsync("/v1/models/local-nano"))!["open_weights"]);

        var chat = Platform.Chat(fixture.TeamKey, id);
        var greedy = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        var expected = Expected([new LibraryMessage("user", "Where is my refund?")], maxTokens: 12);
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Where is my refund?")], greedy)).Value;
        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(expected.FinishReason, completion.FinishReason == ChatFinishReason.Stop ? "stop" : completion.FinishReason == ChatFinishReason.Length ? "length" : "other");
        Assert.Equal(expected.PromptTokens, completion.Usage.InputTokenCount);
        Assert.Equal(expected.CompletionTokens, completion.Usage.OutputTokenCount);

        // Streamed: the same text, in more than one piece, ending with the same reason.
        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Where is my refund?")], greedy))
        {
            pieces.AddRange(update.ContentUpdate.Select(part => part.Text).Where(text => text.Length > 0));
            finish = update.FinishReason ?? finish;
        }

        Assert.Equal(expected.Text, string.Concat(pieces));
        Assert.True(pieces.Count > 1, $"expected the reply token by token, got {pieces.Count} piece(s)");
        Assert.Equal(completion.FinishReason, finish);

        // A system prompt and a multi-turn conversation go through the model's template like the library's.
        var conversation = await chat.CompleteChatAsync(
            [new SystemChatMessage("You route tickets."), new UserChatMessage("hi"), new AssistantChatMessage("hello"), new UserChatMessage("refund?")], greedy);
        Assert.Equal(Expected([new LibraryMessage("system", "You route tickets."), new LibraryMessage("user", "hi"), new LibraryMessage("assistant", "hello"), new LibraryMessage("user", "refund?")], 12).Text,
            conversation.Value.Content[0].Text);

        // Seeded sampling is the library's sampler with the same seed: reproducible, and not the greedy reply.
        var sampled = new ChatCompletionOptions { Temperature = 1.5f, TopP = 0.5f, MaxOutputTokenCount = 12, Seed = 11 };
        var expectedSample = Expected([new LibraryMessage("user", "Where is my refund?")], 12, temperature: 1.5f, topP: 0.5f, seed: 11);
        Assert.Equal(expectedSample.Text, (await chat.CompleteChatAsync([new UserChatMessage("Where is my refund?")], sampled)).Value.Content[0].Text);
        Assert.NotEqual(expected.Text, expectedSample.Text);
    }

    [Fact]
    public async Task Stop_sequences_and_concurrent_requests_batched_on_one_base_give_the_librarys_answers()
    {
        var id = NewId("tiny-batch");
        using (var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id))
        {
            Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        }

        var chat = Platform.Chat(fixture.TeamKey, id);
        var prompts = new[] { "ticket 1: refund?", "ticket 2: password reset", "Bonjour, où est ma commande ? 日本語", "hi" };
        var expected = prompts.Select(prompt => Expected([new LibraryMessage("user", prompt)], maxTokens: 16)).ToList();
        // Four requests at once share the base's decoding steps; each must still get exactly its own reply.
        var answers = await Task.WhenAll(prompts.Select(prompt => chat.CompleteChatAsync([new UserChatMessage(prompt)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16 })));
        Assert.Equal(expected.Select(reply => reply.Text), answers.Select(answer => answer.Value.Content[0].Text));

        // A stop sequence taken from inside the greedy reply, first occurring after some text: the answer ends just before it.
        var full = expected[0].Text;
        var at = Enumerable.Range(2, Math.Max(0, full.Length - 3)).OrderBy(i => Math.Abs(i - (full.Length / 2)))
            .FirstOrDefault(i => full.IndexOf(full.Substring(i, 2), StringComparison.Ordinal) == i);
        Assert.True(at > 0, $"no two characters of the tiny model's reply first occur after its start: '{full}'");
        var stop = full.Substring(at, 2);
        var cut = full[..at];
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 16, StopSequences = { stop } };
        var stopped = (await chat.CompleteChatAsync([new UserChatMessage(prompts[0])], options)).Value;
        Assert.Equal(cut, stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(prompts[0])], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish = update.FinishReason ?? finish;
        }

        Assert.Equal(cut, streamed.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);

        // max_tokens beyond what the context leaves is cut by the context, and a prompt beyond it is a 400.
        using var http = Platform.Http(fixture.TeamKey);
        var tooLong = await http.PostAsync("/v1/chat/completions", JsonContent(new
        {
            model = id,
            messages = new[] { new { role = "user", content = string.Join(' ', Enumerable.Repeat("refund", 600)) } },
        }));
        var error = (await JsonOfAsync(tooLong))["error"]!;
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("messages", error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_internal_inference_service_answers_on_an_imported_base_as_chat_completions_do()
    {
        var id = NewId("tiny-grpc");
        using (var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id))
        {
            Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        }

        // As the evaluation service calls it: the internal token and the project it samples for.
        var (projectId, _) = await Platform.Admin.CreateProjectAsync("member");
        var headers = new global::Grpc.Core.Metadata
        {
            { FineTunePlatform.Contracts.CallerMetadata.InternalToken, Platform.Environment.InternalToken },
            { FineTunePlatform.Contracts.CallerMetadata.ProjectId, projectId },
            { FineTunePlatform.Contracts.CallerMetadata.Role, "member" },
        };
        var inference = new FineTunePlatform.Contracts.Inference.InferenceService.InferenceServiceClient(Platform.Gateway.CreateGrpcChannel());
        var result = await inference.CompleteChatAsync(new FineTunePlatform.Contracts.Inference.ChatCompletionRequest
        {
            Model = id,
            Messages = { new FineTunePlatform.Contracts.Inference.ChatMessage { Role = "user", Content = "ticket 7: my parcel is late" } },
            Temperature = 0,
            MaxTokens = 10,
        }, headers);
        var expected = Expected([new LibraryMessage("user", "ticket 7: my parcel is late")], maxTokens: 10);
        Assert.Equal(expected.Text, result.Content);
        Assert.Equal(expected.FinishReason, result.FinishReason);
        Assert.Equal(expected.PromptTokens, result.PromptTokens);
        Assert.Equal(expected.CompletionTokens, result.CompletionTokens);

        var tooLong = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => inference.CompleteChatAsync(new FineTunePlatform.Contracts.Inference.ChatCompletionRequest
        {
            Model = id,
            Messages = { new FineTunePlatform.Contracts.Inference.ChatMessage { Role = "user", Content = string.Join(' ', Enumerable.Repeat("parcel", 600)) } },
        }, headers).ResponseAsync);
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", tooLong.Trailers.GetValue(FineTunePlatform.Contracts.ErrorMetadata.Code));
    }

    [Fact]
    public async Task Ftune_imports_a_directory_sending_only_the_model_files()
    {
        var directory = CopyModel("cli");
        File.WriteAllText(Path.Combine(directory, "README.md"), "# a model card the import does not take");
        File.WriteAllText(Path.Combine(directory, ".gitattributes"), "*.safetensors filter=lfs");
        var id = NewId("tiny-cli");

        var refused = await FtuneAsync(fixture.TeamKey, "models", "import", directory, "--id", id);
        Assert.Equal(1, refused.ExitCode);
        Assert.StartsWith("ftune: 403: ", refused.Error, StringComparison.Ordinal);

        var imported = await FtuneAsync(TrainingPlatform.AdminKey, "models", "import", directory, "--id", id);
        Assert.True(imported.ExitCode == 0, imported.Output + imported.Error);
        foreach (var name in new[] { "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
        {
            Assert.Matches($@"\n  {System.Text.RegularExpressions.Regex.Escape(name)}  \d+(\.\d)? (bytes|KB|MB)\r?\n", imported.Output);
        }

        Assert.DoesNotContain("README.md", imported.Output, StringComparison.Ordinal);
        Assert.StartsWith("uploading 5 files (", imported.Output, StringComparison.Ordinal);
        var last = imported.Output.TrimEnd().Split('\n')[^1];
        Assert.Matches($@"^{id}  imported  LlamaForCausalLM  \d+ parameters  context 512  \d+(\.\d)? (KB|MB) of weights$", last);
        Assert.Matches($@"\n{id} +system +published\r?\n", (await FtuneAsync(fixture.TeamKey, "models", "list")).Output);

        var chat = await FtuneAsync(fixture.TeamKey, "chat", id, "Where", "is", "my", "refund?", "--max-tokens", "8", "--temperature", "0");
        Assert.True(chat.ExitCode == 0, chat.Error);
        Assert.Equal(Expected([new LibraryMessage("user", "Where is my refund?")], maxTokens: 8).Text + Environment.NewLine, chat.Output);

        var again = await FtuneAsync(TrainingPlatform.AdminKey, "models", "import", directory, "--id", id);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("(param id, code model_exists)", again.Error, StringComparison.Ordinal);
        var notADirectory = await FtuneAsync(TrainingPlatform.AdminKey, "models", "import", Path.Combine(directory, "missing"), "--id", id);
        Assert.Equal(2, notADirectory.ExitCode);
    }

    [Fact]
    public async Task A_model_that_cannot_run_is_refused_naming_the_field_or_tensor_and_nothing_is_stored()
    {
        var id = NewId("tiny-broken");
        using var admin = Platform.Http(TrainingPlatform.AdminKey);

        var gelu = CopyModel("gelu");
        EditConfig(gelu, config => config["hidden_act"] = "gelu");
        using (var response = await ImportAsync(TrainingPlatform.AdminKey, gelu, id))
        {
            var error = (await JsonOfAsync(response))["error"]!;
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("hidden_act", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("config.json", error["param"]!.GetValue<string>());
            Assert.Equal("unsupported_model", error["code"]!.GetValue<string>());
        }

        // Three layers declared, two stored: the first missing tensor is named.
        var missingLayer = CopyModel("missing-tensor");
        EditConfig(missingLayer, config => config["num_hidden_layers"] = 3);
        using (var response = await ImportAsync(TrainingPlatform.AdminKey, missingLayer, id))
        {
            var error = (await JsonOfAsync(response))["error"]!;
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("model.layers.2.", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("unsupported_model", error["code"]!.GetValue<string>());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/v1/models/{id}")).StatusCode);
        Assert.DoesNotContain(id, await admin.GetStringAsync("/v1/models"), StringComparison.Ordinal);

        // A part that is not a plain file name, and a body without the id first.
        using (var form = new MultipartFormDataContent { { new StringContent(id), "id" }, { new ByteArrayContent("{}"u8.ToArray()), "file", "../config.json" } })
        {
            var response = await admin.PostAsync("/admin/v1/models", form);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("filename", (await JsonOfAsync(response))["error"]!["param"]!.GetValue<string>());
        }

        using (var form = new MultipartFormDataContent { { new ByteArrayContent("{}"u8.ToArray()), "file", "config.json" }, { new StringContent(id), "id" } })
        {
            var response = await admin.PostAsync("/admin/v1/models", form);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("id", (await JsonOfAsync(response))["error"]!["param"]!.GetValue<string>());
        }

        // The id is still free: the working directory imports under it.
        using var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id);
        Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
    }

    [Fact]
    public async Task The_same_weights_imported_three_times_at_once_are_stored_once_and_every_import_succeeds()
    {
        // Weights no other test imported, so the three imports race to store the same new content.
        var directory = TinyOpenWeightsModel.Write(Path.Combine(Path.GetTempPath(), NewId("tiny-same")), seed: 99);
        var ids = Enumerable.Range(0, 3).Select(_ => NewId("tiny-same")).ToList();
        var responses = await Task.WhenAll(ids.Select(id => ImportAsync(TrainingPlatform.AdminKey, directory, id)));
        foreach (var response in responses)
        {
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            response.Dispose();
        }

        var weights = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(directory, "model.safetensors"))));
        Assert.Equal(1L, (await Platform.QueryTrainingAsync($"SELECT count(*) FROM stored_blobs WHERE \"Sha256\" = '{weights}'", row => row.GetInt64(0))).Single());
        foreach (var id in ids)
        {
            var reply = await Platform.Chat(fixture.TeamKey, id).CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 });
            Assert.NotNull(reply.Value);
        }

        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_base_deleted_while_another_with_the_same_weights_is_imported_leaves_that_import_whole()
    {
        // Weights no other test imports. Each round stores them under one id, then deletes that base while a second id
        // imports the same files: the deletion must not take blobs the import is about to name.
        var directory = TinyOpenWeightsModel.Write(Path.Combine(Path.GetTempPath(), NewId("tiny-race")), seed: 123);
        using var admin = Platform.Http(TrainingPlatform.AdminKey);
        for (var round = 0; round < 4; round++)
        {
            var first = NewId("tiny-race");
            var second = NewId("tiny-race");
            using (var imported = await ImportAsync(TrainingPlatform.AdminKey, directory, first))
            {
                Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
            }

            var import = ImportAsync(TrainingPlatform.AdminKey, directory, second);
            using var deleted = await admin.DeleteAsync($"/admin/v1/models/{first}");
            using var secondImported = await import;
            Assert.True(deleted.IsSuccessStatusCode, await deleted.Content.ReadAsStringAsync());
            Assert.True(secondImported.StatusCode == HttpStatusCode.OK, await secondImported.Content.ReadAsStringAsync());

            // Every file of the surviving base is stored whole: its blob row and all of its bytes.
            var incomplete = await Platform.QueryTrainingAsync(
                $"""
                SELECT f."Name" FROM base_model_files f
                LEFT JOIN stored_blobs b ON b."Sha256" = f."Sha256"
                WHERE f."ModelId" = '{second}'
                  AND (b."Sha256" IS NULL OR f."Bytes" <> (SELECT coalesce(sum(length(data)), 0) FROM content_chunks WHERE owner_id = f."Sha256"))
                """, row => row.GetString(0));
            Assert.Empty(incomplete);
            var reply = await Platform.Chat(fixture.TeamKey, second).CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 });
            Assert.NotNull(reply.Value);

            // The last base with these weights goes, and its blobs with it.
            using var last = await admin.DeleteAsync($"/admin/v1/models/{second}");
            Assert.True(last.IsSuccessStatusCode, await last.Content.ReadAsStringAsync());
        }

        var weights = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(directory, "model.safetensors"))));
        Assert.Equal(0L, (await Platform.QueryTrainingAsync($"SELECT count(*) FROM content_chunks WHERE owner_id = '{weights}'", row => row.GetInt64(0))).Single());
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Only_platform_admins_import_and_delete_base_models()
    {
        var id = NewId("tiny-admin");
        var (_, ownerKey) = await Platform.Admin.CreateProjectAsync("owner");
        foreach (var key in new[] { fixture.TeamKey, ownerKey })
        {
            using var refused = await ImportAsync(key, fixture.ModelDirectory, id);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var admin = Platform.Http(TrainingPlatform.AdminKey);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/v1/models/{id}")).StatusCode);
        using (var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id))
        {
            Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        }

        // Served once, so that deleting it must also stop a loaded model from answering.
        var chat = Platform.Chat(fixture.TeamKey, id);
        Assert.NotNull((await chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 2 })).Value);

        using var owner = Platform.Http(ownerKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.DeleteAsync($"/admin/v1/models/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await owner.DeleteAsync($"/v1/models/{id}")).StatusCode);
        Assert.Contains(id, await owner.GetStringAsync("/v1/models"), StringComparison.Ordinal);

        var deleted = await admin.DeleteAsync($"/admin/v1/models/{id}");
        var body = await JsonOfAsync(deleted);
        Assert.True(deleted.IsSuccessStatusCode, body.ToJsonString());
        Assert.Equal(id, body["id"]!.GetValue<string>());
        Assert.True(body["deleted"]!.GetValue<bool>());
        Assert.DoesNotContain(id, await owner.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        var gone = await Assert.ThrowsAsync<System.ClientModel.ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 2 }));
        Assert.Equal(404, gone.Status);
    }

    [Fact]
    public async Task Export_is_refused_for_a_base_a_built_in_or_an_upstream_model_and_an_unknown_format()
    {
        var id = NewId("tiny-export");
        using (var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id))
        {
            Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        }

        using var http = Platform.Http(fixture.TeamKey);
        foreach (var model in new[] { id, "local-nano", TrainingPlatform.UpstreamModel })
        {
            foreach (var format in new[] { "", "?format=merged" })
            {
                var response = await http.GetAsync($"/v1/models/{model}/weights{format}");
                var error = (await JsonOfAsync(response))["error"]!;
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{model}{format}: {(int)response.StatusCode} {error.ToJsonString()}");
                Assert.Equal("model_not_exportable", error["code"]!.GetValue<string>());
                Assert.Contains(model, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            }
        }

        var unknownFormat = await http.GetAsync($"/v1/models/{id}/weights?format=gguf");
        Assert.Equal(HttpStatusCode.BadRequest, unknownFormat.StatusCode);
        Assert.Equal("format", (await JsonOfAsync(unknownFormat))["error"]!["param"]!.GetValue<string>());
        var missing = await http.GetAsync("/v1/models/ft:tiny:nobody:x:ftjob-missing/weights");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        var output = Path.Combine(fixture.Scratch, $"{id}.zip");
        var cli = await FtuneAsync(fixture.TeamKey, "models", "export", "local-nano", "--output", output);
        Assert.Equal(1, cli.ExitCode);
        Assert.StartsWith("ftune: 400: ", cli.Error, StringComparison.Ordinal);
        Assert.Contains("code model_not_exportable", cli.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(output + ".partial"));
        var usage = await FtuneAsync(fixture.TeamKey, "models", "export", id, "--format", "gguf", "--output", output);
        Assert.Equal(2, usage.ExitCode);
    }

    [Fact]
    public async Task A_tuned_model_exports_merged_weights_that_answer_as_it_is_served_and_its_checkpoints_export_adapters()
    {
        var id = NewId("tiny-merge");
        using (var imported = await ImportAsync(TrainingPlatform.AdminKey, fixture.ModelDirectory, id))
        {
            Assert.Equal(HttpStatusCode.OK, imported.StatusCode);
        }

        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var file = await Platform.UploadTrainingFileAsync(key);
        var created = await Platform.CreateJobAsync(key, file, epochs: 2, model: id, suffix: "merge", batchSize: 2);
        var job = await Platform.WaitForJobAsync(key, created.GetProperty("id").GetString()!, TrainingPlatform.Finished);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var tuned = job.GetProperty("fine_tuned_model").GetString()!;

        using var http = Platform.Http(key);
        var listed = JsonNode.Parse(await http.GetStringAsync($"/v1/models/{tuned}"))!;
        Assert.Equal(id, listed["open_weights"]!["base_model"]!.GetValue<string>());
        var served = (await Platform.Chat(key, tuned).CompleteChatAsync([new UserChatMessage("ticket 3: refund?")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 })).Value.Content[0].Text;

        // The merged model, loaded by the library on its own, answers what the platform served from base + adapter.
        using var merged = await http.GetAsync($"/v1/models/{tuned}/weights?format=merged&dtype=float32");
        Assert.True(merged.IsSuccessStatusCode, await merged.Content.ReadAsStringAsync());
        Assert.Equal("application/zip", merged.Content.Headers.ContentType?.MediaType);
        Assert.Equal("attachment", merged.Content.Headers.ContentDisposition?.DispositionType);
        var mergedDirectory = Path.Combine(fixture.Scratch, $"{id}-merged");
        await System.IO.Compression.ZipFile.ExtractToDirectoryAsync(await merged.Content.ReadAsStreamAsync(), mergedDirectory);
        Assert.Equal(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
            Directory.EnumerateFiles(mergedDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("float32", JsonNode.Parse(File.ReadAllText(Path.Combine(mergedDirectory, "config.json")))!["torch_dtype"]!.GetValue<string>());
        using (var reloaded = HuggingFaceModel.Load(mergedDirectory))
        {
            var prompt = reloaded.Chat!.EncodePrompt([new LibraryMessage("user", "ticket 3: refund?")]);
            var generated = Generator.Generate(reloaded.Model, [new GenerationRequest(prompt, null, new GenerationOptions(8, StopTokenIds: reloaded.StopTokenIds))])[0];
            Assert.Equal(served, reloaded.Tokenizer.Decode(generated.Tokens));

            // The adapter is in it (the merged model is not the base), or the comparison above would prove nothing.
            Assert.NotEqual(NextTokenLogits(fixture.Reference.Model, prompt), NextTokenLogits(reloaded.Model, prompt));
        }

        // A checkpoint exports its adapter; a project the model was not shared with sees nothing.
        using var checkpoints = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{job.GetProperty("id").GetString()}/checkpoints"));
        var checkpoint = checkpoints.RootElement.GetProperty("data")[0].GetProperty("fine_tuned_model_checkpoint").GetString()!;
        using (var adapter = await http.GetAsync($"/v1/models/{checkpoint}/weights"))
        {
            Assert.True(adapter.IsSuccessStatusCode, await adapter.Content.ReadAsStringAsync());
            using var zip = new System.IO.Compression.ZipArchive(await adapter.Content.ReadAsStreamAsync());
            Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], zip.Entries.Select(entry => entry.Name).Order(StringComparer.Ordinal));
            using var config = JsonDocument.Parse(zip.GetEntry("adapter_config.json")!.Open());
            Assert.Equal(id, config.RootElement.GetProperty("base_model_name_or_path").GetString());
        }

        using var stranger = Platform.Http(fixture.TeamKey);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/models/{tuned}/weights?format=merged")).StatusCode);

        var output = Path.Combine(fixture.Scratch, $"{id}-cli.zip");
        var cli = await FtuneAsync(key, "models", "export", tuned, "--format", "merged", "--output", output);
        Assert.True(cli.ExitCode == 0, cli.Error);
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(output)}  \d+(\.\d)? (KB|MB)  merged of {System.Text.RegularExpressions.Regex.Escape(tuned)}\r?\n$", cli.Output);
        using (var zip = System.IO.Compression.ZipFile.OpenRead(output))
        {
            Assert.Contains(zip.Entries, entry => entry.Name == "model.safetensors");
        }
    }

    private sealed record Reply(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

    /// <summary>What the library answers on the same directory: the chat template's prompt, the generator, the decoding.</summary>
    private Reply Expected(IReadOnlyList<LibraryMessage> messages, int maxTokens, float temperature = 0, float topP = 1, int? seed = null)
    {
        var reference = fixture.Reference;
        var prompt = reference.Chat!.EncodePrompt(messages);
        var output = Generator.Generate(reference.Model,
            [new GenerationRequest(prompt, null, new GenerationOptions(maxTokens, temperature, topP, seed, reference.StopTokenIds))])[0];
        // Usage counts the end-of-turn token too when the model wrote one.
        return new Reply(reference.Tokenizer.Decode(output.Tokens), output.FinishReason, prompt.Length, output.Tokens.Length + (output.FinishReason == "stop" ? 1 : 0));
    }

    private static float[] NextTokenLogits(LlamaModel model, int[] prompt)
    {
        var sequence = new DecodingSequence(model, null);
        new KvCacheDecoder(model).Step([(sequence, prompt)]);
        return sequence.Logits;
    }

    private static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<HttpResponseMessage> ImportAsync(string key, string directory, string id)
    {
        using var http = Platform.Http(key);
        using var form = new MultipartFormDataContent { { new StringContent(id), "id" } };
        foreach (var path in Directory.EnumerateFiles(directory).Where(path => !Path.GetFileName(path).StartsWith('.')))
        {
            var part = new StreamContent(File.OpenRead(path));
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, "file", Path.GetFileName(path));
        }

        return await http.PostAsync("/admin/v1/models", form);
    }

    private string CopyModel(string name)
    {
        var copy = Directory.CreateDirectory(Path.Combine(fixture.Scratch, $"{name}-{Guid.NewGuid():N}")).FullName;
        foreach (var path in Directory.EnumerateFiles(fixture.ModelDirectory))
        {
            File.Copy(path, Path.Combine(copy, Path.GetFileName(path)));
        }

        return copy;
    }

    private static void EditConfig(string directory, Action<JsonObject> edit)
    {
        var path = Path.Combine(directory, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
    }

    private static StringContent JsonContent(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static async Task<JsonObject> JsonOfAsync(HttpResponseMessage response) =>
        JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();

    private async Task<(int ExitCode, string Output, string Error)> FtuneAsync(string key, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await Ftune.InvokeAsync([.. args, "--base-url", new Uri(Platform.Gateway.BaseAddress, "v1").ToString(), "--api-key", key], output, error);
        return (exitCode, output.ToString(), error.ToString());
    }
}
