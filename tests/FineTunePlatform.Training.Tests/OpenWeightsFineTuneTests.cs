using System.ClientModel;
using System.ClientModel.Primitives;
using System.IO.Compression;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Cli;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.OpenWeights.Tests;
using OpenAI.Chat;
using OpenAI.Files;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// Issue 14's whole path on the real platform: an admin imports a Hugging Face directory with `ftune models import`,
/// a team fine-tunes it with LoRA through the OpenAI SDK, the loss falls, the tuned model answers (streaming), its
/// adapter is exported in PEFT's layout, and PyTorch — loading the base and that export with its own code — computes
/// the logits our served model generated from.
/// </summary>
public sealed class OpenWeightsFineTuneTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    private static readonly (string Question, string Answer)[] Tickets =
    [
        ("My invoice is wrong", "billing"),
        ("The app crashes on start", "bug"),
        ("How do I reset my password?", "account"),
        ("Please cancel my plan", "cancel"),
        ("Where is my parcel?", "shipping"),
    ];

    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task An_imported_model_is_fine_tuned_with_lora_served_and_exported_and_pytorch_reproduces_its_logits()
    {
        var scratch = Directory.CreateTempSubdirectory("openweights-e2e-").FullName;
        var baseDirectory = TinyOpenWeightsModel.Write(Path.Combine(scratch, "tiny-llama"));
        var baseId = $"tiny-llama-{Guid.NewGuid():N}"[..24];

        var import = await FtuneAsync(TrainingPlatform.AdminKey, "models", "import", baseDirectory, "--id", baseId);
        Assert.True(import.ExitCode == 0, import.Error + import.Output);

        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var lines = Enumerable.Repeat(Tickets, 2).SelectMany(tickets => tickets).Select(ticket => JsonSerializer.Serialize(new
        {
            messages = new object[] { new { role = "user", content = ticket.Question }, new { role = "assistant", content = ticket.Answer } },
        }));
        var file = await Platform.Files(key).UploadFileAsync(BinaryData.FromString(string.Join('\n', lines) + "\n"), "tickets.jsonl", FileUploadPurpose.FineTune);
        using var http = Platform.Http(key);

        // Before training, the report counts the file with the imported model's own tokenizer and chat template at the
        // length it trains at (the tiny model's context of 512): what a job on it is charged per epoch.
        var fit = await ModelFitAsync(http, file.Value.Id, baseId);
        Assert.Equal(512, fit.GetProperty("context_tokens").GetInt32());
        Assert.Equal(0, fit.GetProperty("examples_truncated").GetInt64());
        var tokensPerEpoch = fit.GetProperty("tokens_per_epoch").GetInt64();
        using (var counted = HuggingFaceModel.Load(baseDirectory))
        {
            // Each example as the model's template renders it: user turn, assistant turn, each closed by <|im_end|>.
            var expected = Tickets.Sum(ticket => (long)counted.Tokenizer.Encode(
                counted.Chat!.Render([new FineTunePlatform.OpenWeights.ChatMessage("user", ticket.Question), new FineTunePlatform.OpenWeights.ChatMessage("assistant", ticket.Answer)], addGenerationPrompt: false)).Length) * 2;
            Assert.Equal(expected, tokensPerEpoch);
        }

        // A file whose answers all lie beyond the training length has nothing to learn: refused at creation, not "succeeded".
        var longPrompt = string.Join(' ', Enumerable.Repeat("please", 600));
        var unlearnable = await Platform.Files(key).UploadFileAsync(BinaryData.FromString(string.Concat(Enumerable.Range(0, 10).Select(i => JsonSerializer.Serialize(new
        {
            messages = new object[] { new { role = "user", content = $"{longPrompt} {i}" }, new { role = "assistant", content = "billing" } },
        }) + "\n"))), "long.jsonl", FileUploadPurpose.FineTune);
        var unlearnableFit = await ModelFitAsync(http, unlearnable.Value.Id, baseId);
        Assert.Equal(10, unlearnableFit.GetProperty("examples_without_learned_tokens").GetInt64());
        Assert.Contains("would learn nothing", unlearnableFit.GetProperty("message").GetString(), StringComparison.Ordinal);
        var refused = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = baseId, training_file = unlearnable.Value.Id });
        var refusal = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("invalid_training_file", refusal.GetProperty("code").GetString());
        Assert.Equal("training_file", refusal.GetProperty("param").GetString());

        // The SDK's protocol method: its typed options do not carry hyperparameters, least of all our LoRA additions.
        var created = await Platform.FineTuning(key).FineTuneAsync(TrainingPlatform.JsonBody(new
        {
            model = baseId,
            training_file = file.Value.Id,
            suffix = "tickets",
            seed = 11,
            method = new
            {
                type = "supervised",
                supervised = new { hyperparameters = new { n_epochs = 30, batch_size = 2, learning_rate_multiplier = 10, lora_rank = 8, lora_alpha = 16, lora_dropout = 0 } },
            },
        }), waitUntilCompleted: false, new RequestOptions());
        var jobId = JsonDocument.Parse(created.GetRawResponse().Content).RootElement.GetProperty("id").GetString()!;
        var job = await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var hyperparameters = job.GetProperty("method").GetProperty("supervised").GetProperty("hyperparameters");
        Assert.Equal(8, hyperparameters.GetProperty("lora_rank").GetInt32());
        Assert.Equal(7, hyperparameters.GetProperty("lora_target_modules").GetArrayLength());
        var model = job.GetProperty("fine_tuned_model").GetString()!;
        Assert.StartsWith($"ft:{baseId}:", model, StringComparison.Ordinal);
        // The estimate shown before training is the charge.
        Assert.Equal(tokensPerEpoch * 30, job.GetProperty("trained_tokens").GetInt64());

        // The loss fell: the last steps' mean is a fraction of the first steps'.
        var losses = await TrainLossesAsync(key, jobId);
        Assert.Equal(150, losses.Count);
        Assert.True(losses.TakeLast(4).Average() < losses.Take(4).Average() / 4, $"loss {losses.Take(4).Average():0.000} -> {losses.TakeLast(4).Average():0.000}");

        // The tuned model answers each ticket, streamed through the SDK.
        var replies = new Dictionary<string, string>();
        foreach (var (question, answer) in Tickets)
        {
            var text = new StringBuilder();
            await foreach (var update in Platform.Chat(key, model).CompleteChatStreamingAsync([new UserChatMessage(question)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }

            replies[question] = text.ToString();
        }

        Assert.Equal(Tickets.Select(ticket => ticket.Answer), Tickets.Select(ticket => replies[ticket.Question]));

        // Export in PEFT's layout, owner only.
        using var export = await http.GetAsync($"/v1/models/{Uri.EscapeDataString(model)}/weights");
        Assert.True(export.IsSuccessStatusCode, await export.Content.ReadAsStringAsync());
        Assert.Equal("application/zip", export.Content.Headers.ContentType?.MediaType);
        var adapterDirectory = Path.Combine(scratch, "adapter");
        await using (var zip = await export.Content.ReadAsStreamAsync())
        {
            await ZipFile.ExtractToDirectoryAsync(zip, adapterDirectory);
        }

        using var adapterConfig = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(adapterDirectory, "adapter_config.json")));
        Assert.Equal("LORA", adapterConfig.RootElement.GetProperty("peft_type").GetString());
        Assert.Equal(8, adapterConfig.RootElement.GetProperty("r").GetInt32());
        var (_, otherKey) = await Platform.Admin.CreateProjectAsync("owner");
        using var stranger = Platform.Http(otherKey);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await stranger.GetAsync($"/v1/models/{Uri.EscapeDataString(model)}/weights")).StatusCode);

        // PyTorch, with its own Llama and its own PEFT loader, on each prompt followed by the reply the platform served:
        // the same logits as ours within 1e-4 of their largest magnitude, and its greedy choice at every reply position is
        // the token that was served.
        using var loaded = HuggingFaceModel.Load(baseDirectory);
        var adapter = PeftAdapter.Load(adapterDirectory, loaded.Model.Config);
        foreach (var (question, answer) in Tickets)
        {
            var prompt = loaded.Chat!.EncodePrompt([new FineTunePlatform.OpenWeights.ChatMessage("user", question)]);
            var reply = loaded.Tokenizer.Encode(replies[question], addSpecialTokens: false);
            int[] tokens = [.. prompt, .. reply, TinyOpenWeightsModel.ImEnd];
            var pytorch = PyTorchLogits(scratch, baseDirectory, adapterDirectory, tokens);
            var ours = new TrainingPass(loaded.Model, adapter, 1, tokens.Length).Logits(tokens);
            var scale = ours.Max(Math.Abs);
            Assert.True(ours.Zip(pytorch).All(pair => Math.Abs(pair.First - pair.Second) <= 1e-4 * scale), $"logits differ for '{question}'");
            for (var i = 0; i <= reply.Length; i++)
            {
                var position = prompt.Length - 1 + i;
                var row = pytorch.AsSpan(position * TinyOpenWeightsModel.VocabularySize, TinyOpenWeightsModel.VocabularySize);
                Assert.Equal(tokens[position + 1], System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row));
            }
        }

        // DPO continues the tuned model's adapter (its shape is kept; another rank is refused) with it as the reference.
        var pairs = Enumerable.Repeat(Tickets, 2).SelectMany(tickets => tickets).Select(ticket => JsonSerializer.Serialize(new
        {
            input = new { messages = new object[] { new { role = "user", content = ticket.Question } } },
            preferred_output = new object[] { new { role = "assistant", content = ticket.Answer } },
            non_preferred_output = new object[] { new { role = "assistant", content = "unknown" } },
        }));
        var preferences = await Platform.Files(key).UploadFileAsync(BinaryData.FromString(string.Join('\n', pairs) + "\n"), "pairs.jsonl", FileUploadPurpose.FineTune);
        var otherRank = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model, training_file = preferences.Value.Id,
            method = new { type = "dpo", dpo = new { hyperparameters = new { n_epochs = 2, lora_rank = 4 } } },
        });
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, otherRank.StatusCode);
        Assert.Equal("hyperparameters.lora_rank", JsonDocument.Parse(await otherRank.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        var dpo = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model, training_file = preferences.Value.Id, suffix = "dpo", seed = 3,
            method = new { type = "dpo", dpo = new { hyperparameters = new { n_epochs = 2, batch_size = 2, beta = 0.1 } } },
        });
        var dpoJob = JsonDocument.Parse(await dpo.Content.ReadAsStringAsync()).RootElement;
        Assert.True(dpo.IsSuccessStatusCode, dpoJob.ToString());
        Assert.Equal(8, dpoJob.GetProperty("method").GetProperty("dpo").GetProperty("hyperparameters").GetProperty("lora_rank").GetInt32());
        var dpoDone = await Platform.WaitForJobAsync(key, dpoJob.GetProperty("id").GetString()!, TrainingPlatform.Finished);
        Assert.True(dpoDone.GetProperty("status").GetString() == "succeeded", dpoDone.ToString());
        // A DPO pair is charged for both of its sequences, as the report for the tuned model (its base's tokenizer) counts.
        var pairFit = await ModelFitAsync(http, preferences.Value.Id, model);
        Assert.Equal(pairFit.GetProperty("tokens_per_epoch").GetInt64() * 2, dpoDone.GetProperty("trained_tokens").GetInt64());
        Assert.StartsWith($"ft:{baseId}:", dpoDone.GetProperty("fine_tuned_model").GetString(), StringComparison.Ordinal);

        Directory.Delete(scratch, recursive: true);
    }

    /// <summary>The file report's only model fit with `?model=`, which must name the model asked about.</summary>
    private static async Task<JsonElement> ModelFitAsync(HttpClient http, string fileId, string model)
    {
        using var response = await http.GetAsync($"/v1/files/{fileId}/report?model={Uri.EscapeDataString(model)}");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var fits = JsonDocument.Parse(body).RootElement.GetProperty("model_fits");
        Assert.Equal(1, fits.GetArrayLength());
        Assert.Equal(model.StartsWith("ft:", StringComparison.Ordinal) ? model.Split(':')[1] : model, fits[0].GetProperty("model").GetString());
        return fits[0].Clone();
    }

    private static float[] PyTorchLogits(string scratch, string model, string adapter, int[] tokens)
    {
        var work = Directory.CreateDirectory(Path.Combine(scratch, "check-" + Guid.NewGuid().ToString("N"))).FullName;
        var tokensFile = Path.Combine(work, "tokens.safetensors");
        SafetensorsWriter.Write(tokensFile, [TensorToWrite.FromInt64("tokens", [.. tokens.Select(token => (long)token)], [1, tokens.Length])]);
        var output = Path.Combine(work, "logits.safetensors");
        var spec = Path.Combine(work, "spec.json");
        File.WriteAllText(spec, JsonSerializer.Serialize(new { model, adapter, tokens = tokensFile, @out = output }));
        PythonReference.Run("check-export", spec);
        using var logits = SafetensorsFile.Open(output);
        return logits.ReadSingles("peft_logits");
    }

    /// <summary>Every metrics event's training loss in step order, paging through the job's events as OpenAI's list does.</summary>
    private async Task<List<double>> TrainLossesAsync(string key, string jobId)
    {
        using var http = Platform.Http(key);
        var metrics = new List<(int Step, double Loss)>();
        string? after = null;
        while (true)
        {
            using var page = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/events?limit=100" + (after is null ? "" : $"&after={after}")));
            var items = page.RootElement.GetProperty("data").EnumerateArray().ToList();
            metrics.AddRange(items.Where(item => item.GetProperty("type").GetString() == "metrics")
                .Select(item => (item.GetProperty("data").GetProperty("step").GetInt32(), item.GetProperty("data").GetProperty("train_loss").GetDouble())));
            if (!page.RootElement.GetProperty("has_more").GetBoolean() || items.Count == 0)
            {
                return [.. metrics.OrderBy(metric => metric.Step).Select(metric => metric.Loss)];
            }

            after = items[^1].GetProperty("id").GetString();
        }
    }

    private async Task<(int ExitCode, string Output, string Error)> FtuneAsync(string key, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await Ftune.InvokeAsync([.. args, "--base-url", new Uri(Platform.Gateway.BaseAddress, "v1").ToString(), "--api-key", key], output, error);
        return (exitCode, output.ToString(), error.ToString());
    }
}
