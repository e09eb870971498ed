using System.Text.Json;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Apis;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.IntegrationEvents;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.RateLimiting;
using FineTunePlatform.Gateway.Routing;
using FineTunePlatform.Gateway.StoredCompletions;
using FineTunePlatform.Gateway.Usage;
using FineTunePlatform.ServiceDefaults.Storage;
using Microsoft.AspNetCore.Authentication;

namespace FineTunePlatform.Gateway.Extensions;

internal static class Extensions
{

    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDatabase<GatewayDbContext>("gatewaydb");
        builder.Services.AddMigration<GatewayDbContext>();
        builder.Services.AddHostedService<BootstrapAdminKey>();

        builder.AddRedis("redis");
        builder.AddMessageBus(bus => bus.AddConsumer<TrainingJobFinishedConsumer>());

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHttpContextAccessor();
        builder.Services.AddTransient<CallerForwardingInterceptor>();

        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Reader, policy => policy.RequireClaim(ApiKeyAuthenticationHandler.RoleClaim, Roles.Owner, Roles.Member, Roles.Reader, Roles.Admin))
            .AddPolicy(Policies.Member, policy => policy.RequireClaim(ApiKeyAuthenticationHandler.RoleClaim, Roles.Owner, Roles.Member, Roles.Admin))
            .AddPolicy(Policies.Owner, policy => policy.RequireClaim(ApiKeyAuthenticationHandler.RoleClaim, Roles.Owner, Roles.Admin))
            .AddPolicy(Policies.PlatformAdmin, policy => policy.RequireClaim(ApiKeyAuthenticationHandler.RoleClaim, Roles.Admin));

        builder.Services.AddExceptionHandler<OpenAIExceptionHandler>();
        // UseExceptionHandler() needs a fallback writer registered; OpenAIExceptionHandler answers every case first.
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(options =>
        {
            options.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            options.SerializerOptions.RespectNullableAnnotations = true;
            // Request bodies are read through RequestBody, which refuses duplicate keys; binding refuses them too
            // (including keys that differ only in case, which the case-insensitive binding would otherwise merge).
            options.SerializerOptions.AllowDuplicateProperties = false;
        });
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(RequestLimits.ConfigureKestrel);

        builder.Services.AddInternalGrpc();

        builder.Services.Configure<RateLimitDefaults>(builder.Configuration.GetSection("Gateway:RateLimits"));
        builder.Services.AddSingleton<ApiKeyCache>();
        builder.Services.AddSingleton<AuthenticationFailures>();
        builder.Services.AddSingleton<ConcurrentStreams>();
        builder.Services.AddSingleton<RedisTokenBuckets>();
        builder.Services.AddSingleton<LocalTokenBuckets>();
        builder.Services.AddSingleton<RequestRateLimiter>();
        builder.Services.AddSingleton<UsageRecorder>();
        builder.Services.AddHostedService(services => services.GetRequiredService<UsageRecorder>());
        builder.Services.AddSingleton<StoredCompletionWriter>();
        builder.Services.AddHostedService(services => services.GetRequiredService<StoredCompletionWriter>());
        builder.Services.AddScoped<StoredCompletionStore>();
        builder.Services.AddScoped<ChatCompletionExport>();

        builder.Services.Configure<UpstreamOptions>(builder.Configuration.GetSection("Gateway:Upstreams"));
        builder.Services.AddSingleton<ModelRouter>();
        builder.Services.AddSingleton<LocalModelRuntime>();
        builder.Services.Configure<OpenWeightsOptions>(builder.Configuration.GetSection("Gateway:OpenWeights"));
        builder.Services.AddSingleton<BaseModelDirectories>();
        builder.Services.AddSingleton<OpenWeightsRuntime>();
        builder.Services.AddSingleton<ChatModels>();
        // Completions stream for as long as the model writes: no overall timeout and no retries of a POST that
        // may already have been billed upstream.
        builder.Services.AddHttpClient(UpstreamChatClient.HttpClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .WithoutResilienceHandlers();
        builder.Services.AddSingleton<UpstreamChatClient>();

        builder.Services.Configure<FileUploadLimits>(builder.Configuration.GetSection("Datasets:Limits"));
        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets")
            .AddInterceptor<CallerForwardingInterceptor>();
        builder.Services.AddInternalGrpcClient<TrainingService.TrainingServiceClient>("training")
            .AddInterceptor<CallerForwardingInterceptor>();
        builder.Services.AddInternalGrpcClient<EvaluationService.EvaluationServiceClient>("evaluation")
            .AddInterceptor<CallerForwardingInterceptor>();
    }
}
