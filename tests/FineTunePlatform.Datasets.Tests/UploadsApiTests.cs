using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

namespace FineTunePlatform.Datasets.Tests;

public sealed class UploadsApiTests(FilesFixture fixture) : IClassFixture<FilesFixture>
{

    [Fact]
    public async Task Parts_complete_in_the_order_given_into_one_validated_file()
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        var content = TrainingData.Jsonl(30);
        var upload = await CreateUploadAsync(http, content.Length);
        // Three parts cut mid-line, completed in order: lines spanning parts must come out whole.
        var cuts = new[] { 0, content.Length / 3, 2 * content.Length / 3, content.Length };
        var partIds = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            partIds.Add(await AddPartAsync(http, upload, new MemoryStream(content[cuts[i]..cuts[i + 1]])));
        }

#pragma warning disable CA5351 // OpenAI's Uploads API checks content with MD5; it is an integrity check, not security.
        var completed = await CompleteAsync(http, upload, partIds, Convert.ToHexStringLower(MD5.HashData(content)));
#pragma warning restore CA5351

        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);
        var body = JsonDocument.Parse(await completed.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("completed", body.GetProperty("status").GetString());
        var file = body.GetProperty("file");
        Assert.Equal("processed", file.GetProperty("status").GetString());
        var downloaded = await http.GetByteArrayAsync(new Uri($"/v1/files/{file.GetProperty("id").GetString()}/content", UriKind.Relative));
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(downloaded));
    }

    [Fact]
    public async Task A_wrong_md5_fails_the_completion_and_stores_no_file()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.HttpClient(key);
        var content = TrainingData.Jsonl(10);
        var upload = await CreateUploadAsync(http, content.Length);
        var part = await AddPartAsync(http, upload, new MemoryStream(content));

        var completed = await CompleteAsync(http, upload, [part], new string('0', 32));

        Assert.Equal(HttpStatusCode.BadRequest, completed.StatusCode);
        Assert.Equal("md5", JsonDocument.Parse(await completed.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        var files = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v1/files", UriKind.Relative))).RootElement;
        Assert.Empty(files.GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task Cancelled_uploads_take_no_more_parts_and_other_projects_cannot_touch_them()
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        var upload = await CreateUploadAsync(http, 100);
        using var intruder = fixture.HttpClient(fixture.TeamB.Key);
        var stolen = await intruder.PostAsync(new Uri($"/v1/uploads/{upload}/cancel", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);

        var cancelled = await http.PostAsync(new Uri($"/v1/uploads/{upload}/cancel", UriKind.Relative), null);
        Assert.Equal("cancelled", JsonDocument.Parse(await cancelled.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());

        using var form = new MultipartFormDataContent { { new ByteArrayContent(new byte[100]), "data", "part" } };
        var late = await http.PostAsync(new Uri($"/v1/uploads/{upload}/parts", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.BadRequest, late.StatusCode);
    }

    [Fact]
    public async Task Completing_an_unknown_upload_is_a_404_whatever_its_parts_and_no_parts_is_a_400_naming_them()
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        foreach (var parts in new[] { Array.Empty<string>(), ["part_missing"] })
        {
            var unknown = await CompleteAsync(http, "upload_missing", parts, null);
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        var upload = await CreateUploadAsync(http, 100);
        var empty = await CompleteAsync(http, upload, [], null);
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        Assert.Equal("part_ids", JsonDocument.Parse(await empty.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        var missing = await http.PostAsJsonAsync($"/v1/uploads/{upload}/complete", new { md5 = (string?)null });
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
    }

    internal static async Task<string> CreateUploadAsync(HttpClient http, long bytes)
    {
        var response = await http.PostAsJsonAsync("/v1/uploads", new { filename = "upload.jsonl", purpose = "fine-tune", bytes, mime_type = "application/jsonl" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var upload = JsonDocument.Parse(body).RootElement;
        Assert.Equal("pending", upload.GetProperty("status").GetString());
        Assert.True(upload.GetProperty("expires_at").GetInt64() > upload.GetProperty("created_at").GetInt64());
        return upload.GetProperty("id").GetString()!;
    }

    internal static async Task<string> AddPartAsync(HttpClient http, string upload, Stream data)
    {
        using var form = new MultipartFormDataContent { { new StreamContent(data, 256 * 1024), "data", "part" } };
        var response = await http.PostAsync(new Uri($"/v1/uploads/{upload}/parts", UriKind.Relative), form);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var part = JsonDocument.Parse(body).RootElement;
        Assert.Equal("upload.part", part.GetProperty("object").GetString());
        return part.GetProperty("id").GetString()!;
    }

    internal static Task<HttpResponseMessage> CompleteAsync(HttpClient http, string upload, IReadOnlyList<string> partIds, string? md5) =>
        http.PostAsJsonAsync($"/v1/uploads/{upload}/complete", new { part_ids = partIds, md5 });
}
