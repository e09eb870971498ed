using System.ClientModel;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using OpenAI.Files;

namespace FineTunePlatform.Datasets.Tests;

public sealed class FilesApiTests(FilesFixture fixture) : IClassFixture<FilesFixture>
{
    [Fact]
    public async Task Upload_get_download_and_delete_through_the_openai_sdk()
    {
        var files = fixture.FileClient(fixture.TeamA.Key);
        var content = TrainingData.Jsonl(12);

        OpenAIFile uploaded = await files.UploadFileAsync(new MemoryStream(content), "tickets.jsonl", FileUploadPurpose.FineTune);

        Assert.StartsWith("file-", uploaded.Id, StringComparison.Ordinal);
        Assert.Equal("tickets.jsonl", uploaded.Filename);
        Assert.Equal(FilePurpose.FineTune, uploaded.Purpose);
        Assert.Equal(content.Length, uploaded.SizeInBytes);
#pragma warning disable OPENAI001, CS0618 // Status is marked obsolete in the SDK but is still what OpenAI returns.
        Assert.Equal(FileStatus.Processed, uploaded.Status);
#pragma warning restore OPENAI001, CS0618

        OpenAIFile fetched = await files.GetFileAsync(uploaded.Id);
        Assert.Equal(uploaded.Id, fetched.Id);

        BinaryData downloaded = await files.DownloadFileAsync(uploaded.Id);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(downloaded.ToArray()));

        FileDeletionResult deleted = await files.DeleteFileAsync(uploaded.Id);
        Assert.True(deleted.Deleted);
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => files.GetFileAsync(uploaded.Id));
        Assert.Equal(404, missing.Status);
    }

    [Fact]
    public async Task A_nul_character_in_the_data_or_the_name_is_a_clear_answer_not_a_server_error()
    {
        // PostgreSQL's jsonb refuses \u0000; a report quoting the user's data must still be stored and shown.
        var files = fixture.FileClient(fixture.TeamA.Key);
        var content = "{\"messages\":[{\"role\":\"us\\u0000er\",\"content\":\"hi\\u0000\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n"u8.ToArray();

        OpenAIFile uploaded = await files.UploadFileAsync(new MemoryStream(content), "nul.jsonl", FileUploadPurpose.FineTune);

        using var http = fixture.HttpClient(fixture.TeamA.Key);
        var report = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/v1/files/{uploaded.Id}/report", UriKind.Relative))).RootElement;
        Assert.Equal("error", report.GetProperty("status").GetString());
        Assert.Contains(report.GetProperty("errors").EnumerateArray(), error => error.GetProperty("line").GetInt64() == 1
            && error.GetProperty("message").GetString()!.Contains("'us\\u0000er'", StringComparison.Ordinal));

        // Names are stored as given: one PostgreSQL cannot store, or one longer than the column, is a 400.
        foreach (var filename in new[] { "tickets\u0000.jsonl", new string('a', 1025) + ".jsonl" })
        {
            var upload = await http.PostAsync(new Uri("/v1/uploads", UriKind.Relative), new StringContent(
                JsonSerializer.Serialize(new { filename, purpose = "fine-tune", bytes = 10, mime_type = "text/jsonl" }), System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, upload.StatusCode);
            Assert.Equal("filename", JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task A_multipart_body_cut_before_its_closing_boundary_is_a_400_and_stores_nothing()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.HttpClient(key);
        var body = new ByteArrayContent("--zzz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.jsonl\"\r\n\r\n{\"messages\":[]}\n"u8.ToArray());
        body.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=zzz");

        var response = await http.PostAsync(new Uri("/v1/files", UriKind.Relative), body);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.Contains("closing boundary", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        // The cut upload's row is removed when its call is cancelled, which the dataset service sees a moment later.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await fixture.CountFileRowsAsync(projectId) > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "The cut upload's file row stayed.");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_file_of_several_chunks_downloads_byte_identical()
    {
        var files = fixture.FileClient(fixture.TeamA.Key);
        // ~3.3 MB: more than three stored chunks, and more than a dozen forwarded gRPC messages.
        var content = TrainingData.Jsonl(25_000);

        OpenAIFile uploaded = await files.UploadFileAsync(new MemoryStream(content), "big.jsonl", FileUploadPurpose.FineTune);
        BinaryData downloaded = await files.DownloadFileAsync(uploaded.Id);

        Assert.Equal(content.Length, downloaded.ToMemory().Length);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(downloaded.ToArray()));
    }

    [Fact]
    public async Task Lists_page_with_after_limit_and_has_more_in_both_orders()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var files = fixture.FileClient(key);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await files.UploadFileAsync(new MemoryStream(TrainingData.Jsonl(10)), $"f{i}.jsonl", FileUploadPurpose.FineTune)).Value.Id);
        }

        OpenAIFileCollection all = await files.GetFilesAsync(FilePurpose.FineTune);
        Assert.Equal(ids.AsEnumerable().Reverse(), all.Select(file => file.Id));

        using var http = fixture.HttpClient(key);
        var first = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v1/files?limit=2&order=asc", UriKind.Relative))).RootElement;
        Assert.Equal(ids.Take(2), first.GetProperty("data").EnumerateArray().Select(file => file.GetProperty("id").GetString()));
        Assert.True(first.GetProperty("has_more").GetBoolean());
        Assert.Equal(ids[1], first.GetProperty("last_id").GetString());

        var rest = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/v1/files?limit=10&order=asc&after={ids[1]}", UriKind.Relative))).RootElement;
        Assert.Equal(ids.Skip(2), rest.GetProperty("data").EnumerateArray().Select(file => file.GetProperty("id").GetString()));
        Assert.False(rest.GetProperty("has_more").GetBoolean());

        var other = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v1/files?purpose=batch", UriKind.Relative))).RootElement;
        Assert.Empty(other.GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task Project_b_cannot_see_read_report_or_delete_project_a_files()
    {
        OpenAIFile owned = await fixture.FileClient(fixture.TeamA.Key).UploadFileAsync(new MemoryStream(TrainingData.Jsonl(10)), "a.jsonl", FileUploadPurpose.FineTune);
        var intruder = fixture.FileClient(fixture.TeamB.Key);
        using var http = fixture.HttpClient(fixture.TeamB.Key);

        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => intruder.GetFileAsync(owned.Id))).Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => intruder.DownloadFileAsync(owned.Id))).Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => intruder.DeleteFileAsync(owned.Id))).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri($"/v1/files/{owned.Id}/report", UriKind.Relative))).StatusCode);
        OpenAIFileCollection listed = await intruder.GetFilesAsync();
        Assert.DoesNotContain(listed, file => file.Id == owned.Id);

        OpenAIFile stillThere = await fixture.FileClient(fixture.TeamA.Key).GetFileAsync(owned.Id);
        Assert.Equal(owned.Id, stillThere.Id);
    }

    [Fact]
    public async Task Over_the_size_limit_is_a_413_and_nothing_stays_stored()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chunksBefore = await fixture.CountStoredChunksAsync();
        var tooBig = TrainingData.Jsonl((int)(FilesFixture.MaxFileBytes / 130) + 1000);
        Assert.True(tooBig.Length > FilesFixture.MaxFileBytes);

        var error = await Assert.ThrowsAsync<ClientResultException>(() =>
            fixture.FileClient(key).UploadFileAsync(new MemoryStream(tooBig), "huge.jsonl", FileUploadPurpose.FineTune));

        Assert.Equal(413, error.Status);
        var body = JsonDocument.Parse(error.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", body.GetProperty("type").GetString());
        OpenAIFileCollection listed = await fixture.FileClient(key).GetFilesAsync();
        Assert.Empty(listed);
        Assert.Equal(chunksBefore, await fixture.CountStoredChunksAsync());
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_is_stopped_mid_stream_with_a_413_and_cleaned_up()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chunksBefore = await fixture.CountStoredChunksAsync();
        var tooBig = TrainingData.Jsonl((int)(FilesFixture.MaxFileBytes / 130) + 1000);
        using var http = fixture.HttpClient(key);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("fine-tune"), "purpose" },
            // No length known up front: the gateway must forward it and the dataset service must stop it.
            { new StreamContent(new UnseekableStream(tooBig)), "file", "huge.jsonl" },
        };
        form.Headers.ContentLength = null;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/files", UriKind.Relative)) { Content = form };
        request.Headers.TransferEncodingChunked = true;

        // The gateway stops reading at the limit (plus a bounded drain), so a client that is still sending when the
        // answer comes may see its connection cut instead of the 413: either way, nothing is kept.
        HttpResponseMessage? response = null;
        try
        {
            response = await http.SendAsync(request);
        }
        catch (HttpRequestException ex) when (ex.InnerException is IOException)
        {
        }

        if (response is not null)
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("payload_too_large", error.GetProperty("code").GetString());
            response.Dispose();
        }

        await WaitForChunksAsync(chunksBefore);
        OpenAIFileCollection listed = await fixture.FileClient(key).GetFilesAsync();
        Assert.Empty(listed);
    }

    [Fact]
    public async Task A_chunked_body_under_the_limit_is_stored()
    {
        // No Content-Length declares nothing: the refusal on a declared length must not take it for too large.
        var (_, key) = await fixture.CreateProjectAsync("member");
        var content = TrainingData.Jsonl(20);
        using var http = fixture.HttpClient(key);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("fine-tune"), "purpose" },
            { new StreamContent(new UnseekableStream(content)), "file", "chunked.jsonl" },
        };
        form.Headers.ContentLength = null;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/files", UriKind.Relative)) { Content = form };
        request.Headers.TransferEncodingChunked = true;

        var response = await http.SendAsync(request);

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal(content.Length, JsonDocument.Parse(body).RootElement.GetProperty("bytes").GetInt64());
    }

    /// <summary>A cut upload is cleaned up when the dataset service sees its call cancelled: give it a moment.</summary>
    private async Task WaitForChunksAsync(long expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await fixture.CountStoredChunksAsync() != expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Equal(expected, await fixture.CountStoredChunksAsync());
    }

    private sealed class UnseekableStream(byte[] content) : MemoryStream(content)
    {
        public override bool CanSeek => false;
    }

    [Theory]
    [InlineData("purpose=fine-tune", null, "file")]
    [InlineData("file", null, "purpose")]
    [InlineData("file", "unicorns", "purpose")]
    public async Task Missing_or_invalid_form_fields_are_400s_naming_the_field(string fields, string? purpose, string expectedParam)
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        using var form = new MultipartFormDataContent();
        if (fields.Contains("file", StringComparison.Ordinal) && !fields.StartsWith("purpose", StringComparison.Ordinal))
        {
            form.Add(new ByteArrayContent(TrainingData.Jsonl(10)), "file", "x.jsonl");
        }

        if (fields.StartsWith("purpose", StringComparison.Ordinal) || purpose is not null)
        {
            form.Add(new StringContent(purpose ?? "fine-tune"), "purpose");
        }

        var response = await http.PostAsync(new Uri("/v1/files", UriKind.Relative), form);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(expectedParam, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Purpose_before_or_after_the_file_both_work_with_curl_style_forms()
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("fine-tune"), "purpose" },
            { new ByteArrayContent(TrainingData.Jsonl(10)), "file", "first.jsonl" },
        };

        var response = await http.PostAsync(new Uri("/v1/files", UriKind.Relative), form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var file = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("processed", file.GetProperty("status").GetString());
        Assert.Equal("fine-tune", file.GetProperty("purpose").GetString());
    }
}
