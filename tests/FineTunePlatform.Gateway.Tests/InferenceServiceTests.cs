using FineTunePlatform.Contracts;
using FineTunePlatform.Contracts.Inference;
using Grpc.Core;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>The internal InferenceService (for the evaluation service) over real gRPC.</summary>
public sealed class InferenceServiceTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private Metadata CallerHeaders(string projectId, string? token = null) => new()
    {
        { CallerMetadata.InternalToken, token ?? fixture.InternalToken },
        { CallerMetadata.ProjectId, projectId },
        { CallerMetadata.Role, "member" },
    };

    private InferenceService.InferenceServiceClient Client() => new(fixture.Gateway.CreateGrpcChannel());

    private static ChatCompletionRequest Request(string model, string prompt) => new()
    {
        Model = model,
        Messages = { new ChatMessage { Role = "user", Content = prompt } },
        MaxTokens = 8,
        Seed = 1,
    };

    [Fact]
    public async Task Routes_to_the_upstream_provider_for_a_project()
    {
        var (projectId, _) = await fixture.CreateProjectAsync("member");

        var result = await Client().CompleteChatAsync(Request(GatewayFixture.UpstreamModel, "grade this answer"), CallerHeaders(projectId));

        Assert.Equal("answer this grade", result.Content);
        Assert.Equal(3, result.CompletionTokens);
    }

    [Fact]
    public async Task Serves_the_built_in_runtime()
    {
        var (projectId, _) = await fixture.CreateProjectAsync("member");

        var result = await Client().CompleteChatAsync(Request("local-nano", "hello"), CallerHeaders(projectId));

        Assert.InRange(result.CompletionTokens, 1, 8);
        Assert.Contains(result.FinishReason, new[] { "stop", "length" });
    }

    [Fact]
    public async Task Refuses_calls_without_the_internal_token_and_unknown_models()
    {
        var (projectId, _) = await fixture.CreateProjectAsync("member");

        var forged = await Assert.ThrowsAsync<RpcException>(() => Client().CompleteChatAsync(Request("local-nano", "hi"), CallerHeaders(projectId, "not-the-token-at-all")).ResponseAsync);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => Client().CompleteChatAsync(Request("no-such-model", "hi"), CallerHeaders(projectId)).ResponseAsync);

        Assert.Equal(StatusCode.Unauthenticated, forged.StatusCode);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("model_not_found", unknown.Trailers.GetValue(ErrorMetadata.Code));
    }
}
