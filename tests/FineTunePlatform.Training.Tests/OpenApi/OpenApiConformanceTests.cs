using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.Training.Tests.OpenApi;

/// <summary>
/// Issue 16's conformance suite: every operation of OpenAI's OpenAPI document that the platform implements (files,
/// uploads, fine-tuning, checkpoint permissions, models, evals, chat completions) is called on the real platform,
/// answering with success and with errors, and every answer — each event of a stream too — is validated against the
/// document's schema for that operation and status. Zero violations are allowed except where the document itself is
/// wrong (<see cref="DocumentErrata"/>, also in docs/conformance.md).
/// </summary>
public sealed class OpenApiConformanceTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    /// <summary>The document's operations this platform does not implement (none now; a new one would be listed here).</summary>
    public static readonly IReadOnlySet<string> NotImplemented = new HashSet<string>();

    /// <summary>
    /// Where the document is wrong, not us: each erratum is (a part of the request path it occurs on, the end of the
    /// location in the answer, the value there, the schema keyword that refuses it) and why. The list is
    /// docs/conformance.md's.
    /// </summary>
    public static readonly IReadOnlyList<(string Path, string Location, string Value, string Keyword, string Why)> DocumentErrata =
    [
        ("/fine_tuning/jobs/", "/status", "\"paused\"", "enum", "FineTuningJob.status lacks \"paused\", though the document has pause and resume"),
        ("/files", "/purpose", "\"evals\"", "enum", "OpenAIFile.purpose lacks \"evals\", the purpose files for evals are uploaded with"),
        ("/evals/", "/error", "null", "type", "EvalRun.error is null when a run has no error, as the document's own createEvalRun example answers"),
        ("/output_items", "/sample/error", "null", "type", "an output item's sample.error is null when sampling succeeded, as the document's getEvalRunOutputItems example answers"),
        ("/messages", "/role", "\"system\"", "enum", "a stored completion's messages are the request's, with their roles; the document types each as an assistant message"),
        ("/messages", "/role", "\"user\"", "enum", "the same, for a user message"),
    ];

    private static bool IsErratum(string violation, (string Path, string Location, string Value, string Keyword, string Why) erratum) =>
        violation[..violation.IndexOf(" -> ", StringComparison.Ordinal)].Contains(erratum.Path, StringComparison.Ordinal)
        && violation.Contains($"{erratum.Location} = {erratum.Value} ({erratum.Keyword} at ", StringComparison.Ordinal);

    [Fact]
    public async Task Every_implemented_operation_answers_as_openais_document_says_with_success_and_with_errors()
    {
        var recorder = new ConformanceRecorder(OpenApiDocument.Load());
        var (_, key) = await fixture.Platform.Admin.CreateProjectAsync("owner");
        var (otherProject, _) = await fixture.Platform.Admin.CreateProjectAsync("owner");
        using var http = new HttpClient(recorder) { BaseAddress = fixture.Platform.Gateway.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var fileId = await FilesAsync(http);
        await UploadsAsync(http);
        await ModelsAndChatAsync(http);
        var model = await FineTuningAsync(http, fileId, otherProject);
        await EvalsAsync(http);
        Expect(await http.DeleteAsync($"/v1/models/{Uri.EscapeDataString(model)}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync("/v1/models/ft:local-nano:nobody:x:ftjob-none"), HttpStatusCode.NotFound);
        await GradersAsync(http);
        await StoredCompletionsAsync(http);

        // Every operation was answered, at least once with success, apart from the ones we do not implement.
        var succeeded = recorder.Statuses.Where(pair => pair.Value.Any(status => status < 400)).Select(pair => pair.Key).ToHashSet();
        var missing = recorder.Document.Operations.Where(operation => !succeeded.Contains(operation) && !NotImplemented.Contains(operation)).ToList();
        Assert.True(missing.Count == 0, "Not exercised with success: " + string.Join(", ", missing));
        Assert.True(recorder.Statuses.Values.Sum(statuses => statuses.Count(status => status >= 400)) >= 20, "too few error answers were checked");
        Assert.True(recorder.EventsChecked > 3, "no stream's events were checked");

        var violations = recorder.Violations.Where(violation => !DocumentErrata.Any(erratum => IsErratum(violation, erratum))).ToList();
        // Each erratum is still needed: when the document is fixed (or we stop answering so), it is removed from the list.
        var errataSeen = DocumentErrata.Where(erratum => recorder.Violations.Any(violation => IsErratum(violation, erratum))).ToList();
        Assert.Equal(DocumentErrata, errataSeen);
        Assert.True(violations.Count == 0, $"{violations.Count} answers do not conform:\n" + string.Join("\n", violations));
    }

    private static async Task<string> FilesAsync(HttpClient http)
    {
        var lines = string.Concat(Enumerable.Range(0, 10).Select(i => JsonSerializer.Serialize(new
        {
            messages = new object[] { new { role = "user", content = $"ticket {i}: refund?" }, new { role = "assistant", content = i % 2 == 0 ? "billing" : "support" } },
        }) + "\n"));
        var file = await Json(await http.PostAsync("/v1/files", FileForm(lines, "fine-tune", "tickets.jsonl")), HttpStatusCode.OK);
        var fileId = file.GetProperty("id").GetString()!;
        Expect(await http.PostAsync("/v1/files", FileForm(lines, "homework", "tickets.jsonl")), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync("/v1/files"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/files?purpose=fine-tune&limit=1&order=asc"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/files?limit=0"), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync($"/v1/files/{fileId}"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/files/file-doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.GetAsync($"/v1/files/{fileId}/content"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/files/file-doesnotexist/content"), HttpStatusCode.NotFound);
        var evalsFile = await Json(await http.PostAsync("/v1/files", FileForm("{\"item\":{\"question\":\"q\",\"expected\":\"a\"}}\n", "evals", "items.jsonl")), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/files/{evalsFile.GetProperty("id").GetString()}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync("/v1/files/file-doesnotexist"), HttpStatusCode.NotFound);
        return fileId;
    }

    private static async Task UploadsAsync(HttpClient http)
    {
        var content = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n";
        var repeated = string.Concat(Enumerable.Repeat(content, 10));
        var upload = await Json(await http.PostAsJsonAsync("/v1/uploads", new { filename = "chat.jsonl", purpose = "fine-tune", bytes = Encoding.UTF8.GetByteCount(repeated), mime_type = "text/jsonl" }), HttpStatusCode.OK);
        var uploadId = upload.GetProperty("id").GetString()!;
        var part = await Json(await http.PostAsync($"/v1/uploads/{uploadId}/parts", PartForm(repeated)), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync($"/v1/uploads/{uploadId}/complete", new { part_ids = new[] { part.GetProperty("id").GetString() } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/uploads", new { filename = "chat.jsonl", purpose = "fine-tune", bytes = -1, mime_type = "text/jsonl" }), HttpStatusCode.BadRequest);

        var cancelled = await Json(await http.PostAsJsonAsync("/v1/uploads", new { filename = "x.jsonl", purpose = "fine-tune", bytes = 10, mime_type = "text/jsonl" }), HttpStatusCode.OK);
        Expect(await http.PostAsync($"/v1/uploads/{cancelled.GetProperty("id").GetString()}/cancel", null), HttpStatusCode.OK);
        Expect(await http.PostAsync("/v1/uploads/upload_doesnotexist/cancel", null), HttpStatusCode.NotFound);
        Expect(await http.PostAsync("/v1/uploads/upload_doesnotexist/parts", PartForm("x")), HttpStatusCode.NotFound);
        Expect(await http.PostAsJsonAsync("/v1/uploads/upload_doesnotexist/complete", new { part_ids = Array.Empty<string>() }), HttpStatusCode.NotFound);
    }

    private static async Task ModelsAndChatAsync(HttpClient http)
    {
        Expect(await http.GetAsync("/v1/models"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/models/local-nano"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/models/no-such-model"), HttpStatusCode.NotFound);

        var messages = new object[] { new { role = "system", content = "Route the ticket." }, new { role = "user", content = "refund my invoice" } };
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 8, temperature = 0 }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 8, seed = 3, stop = new[] { "\n" } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 8, stream = true }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 8, stream = true, stream_options = new { include_usage = true } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano" }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = -1 }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "no-such-model", messages }), HttpStatusCode.NotFound);
        Expect(await http.PostAsync("/v1/chat/completions", new StringContent("{\"model\":", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest);
    }

    /// <summary>A job to success (its checkpoints shared and unshared), and one paused, resumed and cancelled. Returns the tuned model.</summary>
    private async Task<string> FineTuningAsync(HttpClient http, string fileId, string otherProject)
    {
        var created = await Json(await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "local-nano", training_file = fileId, suffix = "conformance", seed = 7, metadata = new { team = "a" },
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 2, batch_size = 2 } } },
        }), HttpStatusCode.OK);
        var jobId = created.GetProperty("id").GetString()!;
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "no-such-model", training_file = fileId }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = "file-doesnotexist" }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = fileId, method = new { type = "reinforcement" } }), HttpStatusCode.BadRequest);
        var job = await fixture.Platform.WaitForJobAsync(http.DefaultRequestHeaders.Authorization!.Parameter!, jobId, TrainingPlatform.Finished);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Expect(await http.GetAsync($"/v1/fine_tuning/jobs/{jobId}"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/fine_tuning/jobs/ftjob-doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.GetAsync("/v1/fine_tuning/jobs?limit=2&metadata[team]=a"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/fine_tuning/jobs?limit=abc"), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync($"/v1/fine_tuning/jobs/{jobId}/events?limit=50"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/fine_tuning/jobs/ftjob-doesnotexist/events"), HttpStatusCode.NotFound);
        var checkpoints = await Json(await http.GetAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/fine_tuning/jobs/ftjob-doesnotexist/checkpoints"), HttpStatusCode.NotFound);
        Expect(await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/pause", null), HttpStatusCode.BadRequest);
        Expect(await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/cancel", null), HttpStatusCode.BadRequest);

        var checkpoint = Uri.EscapeDataString(checkpoints.GetProperty("data")[0].GetProperty("fine_tuned_model_checkpoint").GetString()!);
        var granted = await Json(await http.PostAsJsonAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions", new { project_ids = new[] { otherProject } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions", new { project_ids = Array.Empty<string>() }), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions"), HttpStatusCode.OK);
        Expect(await http.GetAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions?project_id={otherProject}&limit=1&order=descending"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions/{granted.GetProperty("data")[0].GetProperty("id").GetString()}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions/cp_doesnotexist"), HttpStatusCode.NotFound);

        // A long job: paused, resumed, cancelled.
        var longJob = (await Json(await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "local-nano", training_file = fileId,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 50, batch_size = 1 } } },
        }), HttpStatusCode.OK)).GetProperty("id").GetString()!;
        Expect(await http.PostAsync($"/v1/fine_tuning/jobs/{longJob}/pause", null), HttpStatusCode.OK);
        Expect(await http.GetAsync($"/v1/fine_tuning/jobs/{longJob}"), HttpStatusCode.OK);
        Expect(await http.PostAsync($"/v1/fine_tuning/jobs/{longJob}/resume", null), HttpStatusCode.OK);
        Expect(await http.PostAsync($"/v1/fine_tuning/jobs/{longJob}/cancel", null), HttpStatusCode.OK);
        Expect(await http.PostAsync("/v1/fine_tuning/jobs/ftjob-doesnotexist/resume", null), HttpStatusCode.NotFound);
        return job.GetProperty("fine_tuned_model").GetString()!;
    }

    private async Task EvalsAsync(HttpClient http)
    {
        var eval = await Json(await http.PostAsJsonAsync("/v1/evals", new
        {
            name = "routing",
            metadata = new { team = "a" },
            data_source_config = new
            {
                type = "custom",
                item_schema = new { type = "object", properties = new { question = new { type = "string" }, expected = new { type = "string" } }, required = new[] { "question", "expected" } },
                include_sample_schema = true,
            },
            testing_criteria = new object[]
            {
                new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" },
                new { type = "text_similarity", name = "close", input = "{{sample.output_text}}", reference = "{{item.expected}}", evaluation_metric = "fuzzy_match", pass_threshold = 0.5 },
            },
        }), HttpStatusCode.Created);
        var evalId = eval.GetProperty("id").GetString()!;
        Expect(await http.PostAsJsonAsync("/v1/evals", new { name = "broken", data_source_config = new { type = "custom" }, testing_criteria = Array.Empty<object>() }), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync("/v1/evals?limit=5&order=asc"), HttpStatusCode.OK);
        Expect(await http.GetAsync($"/v1/evals/{evalId}"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/evals/eval_doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.PostAsJsonAsync($"/v1/evals/{evalId}", new { name = "routing v2", metadata = new { team = "b" } }), HttpStatusCode.OK);

        var items = new[] { ("refund my invoice", "billing"), ("the app crashes", "bug") }
            .Select(pair => new { item = new { question = pair.Item1, expected = pair.Item2 } }).ToArray();
        // Sampled by a model, and graded on samples that come with the items.
        var sampled = await Json(await http.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new
        {
            name = "sampled",
            data_source = new
            {
                type = "completions", model = "local-nano",
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { max_completion_tokens = 4, temperature = 0 },
                source = new { type = "file_content", content = items },
            },
        }), HttpStatusCode.Created);
        var jsonl = await Json(await http.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new
        {
            data_source = new
            {
                type = "jsonl",
                source = new { type = "file_content", content = items.Select(item => new { item.item, sample = new { output_text = item.item.expected } }).ToArray() },
            },
        }), HttpStatusCode.Created);
        Expect(await http.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new { data_source = new { type = "jsonl" } }), HttpStatusCode.BadRequest);
        var key = http.DefaultRequestHeaders.Authorization!.Parameter!;
        foreach (var run in new[] { sampled, jsonl })
        {
            var runId = run.GetProperty("id").GetString()!;
            await fixture.Platform.WaitForEvalRunAsync(key, evalId, runId);
            Expect(await http.GetAsync($"/v1/evals/{evalId}/runs/{runId}"), HttpStatusCode.OK);
            var outputItems = await Json(await http.GetAsync($"/v1/evals/{evalId}/runs/{runId}/output_items?limit=10"), HttpStatusCode.OK);
            Expect(await http.GetAsync($"/v1/evals/{evalId}/runs/{runId}/output_items/{outputItems.GetProperty("data")[0].GetProperty("id").GetString()}"), HttpStatusCode.OK);
        }

        Expect(await http.GetAsync($"/v1/evals/{evalId}/runs?limit=10"), HttpStatusCode.OK);
        Expect(await http.GetAsync($"/v1/evals/{evalId}/runs/evalrun_doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.GetAsync($"/v1/evals/{evalId}/runs/evalrun_doesnotexist/output_items"), HttpStatusCode.NotFound);
        Expect(await http.GetAsync($"/v1/evals/{evalId}/runs/{jsonl.GetProperty("id").GetString()}/output_items/outputitem_doesnotexist"), HttpStatusCode.NotFound);

        // A run long enough to be cancelled while it samples, then deleted; then the eval.
        var many = Enumerable.Range(0, 400).Select(i => new { item = new { question = $"ticket {i}", expected = "billing" } }).ToArray();
        var cancelled = await Json(await http.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new
        {
            data_source = new
            {
                type = "completions", model = "local-nano",
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { max_completion_tokens = 64 },
                source = new { type = "file_content", content = many },
            },
        }), HttpStatusCode.Created);
        var cancelledId = cancelled.GetProperty("id").GetString()!;
        Expect(await http.PostAsync($"/v1/evals/{evalId}/runs/{cancelledId}", null), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/evals/{evalId}/runs/{cancelledId}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/evals/{evalId}/runs/evalrun_doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.DeleteAsync($"/v1/evals/{evalId}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync("/v1/evals/eval_doesnotexist"), HttpStatusCode.NotFound);
    }

    private static async Task GradersAsync(HttpClient http)
    {
        var check = new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" };
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new { grader = check, model_sample = "billing", item = new { expected = "billing" } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new
        {
            grader = new { type = "text_similarity", name = "close", input = "{{sample.output_text}}", reference = "billing", evaluation_metric = "fuzzy_match" },
            model_sample = "biling",
        }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new
        {
            grader = new { type = "score_model", name = "judge", model = "local-nano", input = new[] { new { role = "user", content = "Score: {{sample.output_text}}" } }, range = new[] { 0, 10 } },
            model_sample = "billing",
        }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new { grader = check }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new { grader = new { type = "python", name = "p", source = "def grade(s, i): return 1" }, model_sample = "x" }), HttpStatusCode.BadRequest);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/validate", new { grader = check }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/validate", new { grader = check with { operation = "contains" } }), HttpStatusCode.BadRequest);
    }

    private static async Task StoredCompletionsAsync(HttpClient http)
    {
        var messages = new object[] { new { role = "system", content = "Route the ticket." }, new { role = "user", content = "refund my invoice" } };
        var stored = await Json(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 4, store = true, metadata = new { source = "conformance" } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync("/v1/chat/completions", new { model = "local-nano", messages, max_tokens = 4, store = true, stream = true }), HttpStatusCode.OK);
        var id = stored.GetProperty("id").GetString()!;
        // Stored off the request path: readable a moment after the answer.
        for (var deadline = DateTime.UtcNow.AddSeconds(10); ; await Task.Delay(50))
        {
            using var probe = new HttpRequestMessage(HttpMethod.Get, $"/v1/chat/completions/{id}");
            using var found = await http.SendAsync(probe);
            if (found.IsSuccessStatusCode || DateTime.UtcNow > deadline)
            {
                Assert.True(found.IsSuccessStatusCode, await found.Content.ReadAsStringAsync());
                break;
            }
        }

        Expect(await http.GetAsync("/v1/chat/completions?model=local-nano&metadata[source]=conformance&limit=5&order=desc"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/chat/completions?limit=0"), HttpStatusCode.BadRequest);
        Expect(await http.GetAsync($"/v1/chat/completions/{id}/messages?limit=10&order=asc"), HttpStatusCode.OK);
        Expect(await http.GetAsync("/v1/chat/completions/chatcmpl-doesnotexist"), HttpStatusCode.NotFound);
        Expect(await http.GetAsync("/v1/chat/completions/chatcmpl-doesnotexist/messages"), HttpStatusCode.NotFound);
        Expect(await http.PostAsJsonAsync($"/v1/chat/completions/{id}", new { metadata = new { source = "conformance", reviewed = "yes" } }), HttpStatusCode.OK);
        Expect(await http.PostAsJsonAsync($"/v1/chat/completions/{id}", new { metadata = "no" }), HttpStatusCode.BadRequest);
        Expect(await http.DeleteAsync($"/v1/chat/completions/{id}"), HttpStatusCode.OK);
        Expect(await http.DeleteAsync($"/v1/chat/completions/{id}"), HttpStatusCode.NotFound);
    }

    private static MultipartFormDataContent FileForm(string content, string purpose, string name) => new()
    {
        { new StringContent(purpose), "purpose" },
        { new ByteArrayContent(Encoding.UTF8.GetBytes(content)), "file", name },
    };

    private static MultipartFormDataContent PartForm(string content) => new() { { new ByteArrayContent(Encoding.UTF8.GetBytes(content)), "data", "part" } };

    /// <summary>The status each call must answer with: a call that answers otherwise is a broken test, not a conformance finding.</summary>
    private static void Expect(HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            Assert.True(response.StatusCode == status,
                $"{response.RequestMessage!.Method} {response.RequestMessage.RequestUri!.PathAndQuery}: {(int)response.StatusCode}, expected {(int)status}: {response.Content.ReadAsStringAsync().GetAwaiter().GetResult()}");
        }
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Expect(response, status);
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}

/// <summary>Checks every answer that passes through it against the document, keeping what is wrong and which operations answered with what.</summary>
public sealed class ConformanceRecorder(OpenApiDocument document) : DelegatingHandler(new SocketsHttpHandler())
{
    public OpenApiDocument Document { get; } = document;

    public ConcurrentQueue<string> Violations { get; } = new();

    public ConcurrentDictionary<string, ConcurrentBag<int>> Statuses { get; } = new();

    public int EventsChecked { get; private set; }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        var path = request.RequestUri!.AbsolutePath;
        path = path.StartsWith("/v1/", StringComparison.Ordinal) ? path["/v1".Length..] : path;
        var method = request.Method.Method;
        if (Document.OperationFor(method, path) is not { } operation)
        {
            return response;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (mediaType == "text/event-stream")
        {
            EventsChecked += body.Split('\n').Count(line => line.StartsWith("data: {", StringComparison.Ordinal));
        }

        Statuses.GetOrAdd(operation, _ => []).Add((int)response.StatusCode);
        foreach (var problem in Document.Check(method, path, response.StatusCode, mediaType, body))
        {
            Violations.Enqueue($"{method} {request.RequestUri.PathAndQuery} -> {(int)response.StatusCode}: {problem}");
        }

        return response;
    }
}
