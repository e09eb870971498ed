using System.Net;

namespace FineTunePlatform.Training.Tests.OpenApi;

/// <summary>The validator itself: it finds what is wrong, and only that, so that the conformance test's "no violations" means something.</summary>
public sealed class OpenApiDocumentTests
{
    private static readonly OpenApiDocument Document = OpenApiDocument.Load();

    private const string File = """{"id":"file-1","object":"file","bytes":3,"created_at":1,"filename":"a.jsonl","purpose":"fine-tune","status":"processed"}""";

    [Fact]
    public void A_conforming_answer_has_no_violations_and_each_kind_of_mistake_is_named()
    {
        Assert.Empty(Document.Check("GET", "/files/file-1", HttpStatusCode.OK, "application/json", File));
        Assert.Contains(Document.Check("GET", "/files/file-1", HttpStatusCode.OK, "application/json", File.Replace("\"bytes\":3", "\"bytes\":\"3\"")),
            violation => violation.StartsWith("/bytes = \"3\" (type", StringComparison.Ordinal));
        Assert.Contains(Document.Check("GET", "/files/file-1", HttpStatusCode.OK, "application/json", File.Replace("\"filename\":\"a.jsonl\",", "")),
            violation => violation.Contains("required", StringComparison.Ordinal) && violation.Contains("filename", StringComparison.Ordinal));
        Assert.NotEmpty(Document.Check("GET", "/files/file-1", HttpStatusCode.OK, "application/json", "not json"));
    }

    [Fact]
    public void Errors_are_checked_against_openais_error_shape_and_streams_event_by_event()
    {
        Assert.Empty(Document.Check("GET", "/files/x", HttpStatusCode.NotFound, "application/json",
            """{"error":{"message":"No such File object: x","type":"invalid_request_error","param":"id","code":null}}"""));
        Assert.NotEmpty(Document.Check("GET", "/files/x", HttpStatusCode.NotFound, "application/json", """{"error":{"message":"No such File object: x"}}"""));
        Assert.NotEmpty(Document.Check("GET", "/files/x", HttpStatusCode.NotFound, "application/json", ""));

        const string chunk = """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}""";
        Assert.Empty(Document.Check("POST", "/chat/completions", HttpStatusCode.OK, "text/event-stream", $"data: {chunk}\n\ndata: [DONE]\n\n"));
        Assert.NotEmpty(Document.Check("POST", "/chat/completions", HttpStatusCode.OK, "text/event-stream",
            $"data: {chunk}\n\ndata: {chunk.Replace("\"index\":0", "\"index\":\"0\"")}\n\n"));
    }

    [Fact]
    public void Routes_the_document_does_not_have_are_ours_and_not_checked()
    {
        Assert.Null(Document.OperationFor("GET", "/files/file-1/report"));
        Assert.Equal("GET /files/{file_id}", Document.OperationFor("GET", "/files/file-1"));
        Assert.Equal("POST /fine_tuning/jobs/{fine_tuning_job_id}/pause", Document.OperationFor("POST", "/fine_tuning/jobs/ftjob-1/pause"));
        Assert.Equal(43, Document.Operations.Count());
    }
}
