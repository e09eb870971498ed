using FineTunePlatform.Gateway.Apis;
using FineTunePlatform.Gateway.Extensions;
using FineTunePlatform.Gateway.Grpc;
using FineTunePlatform.Gateway.OpenAI;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.Use(ResponseHeaders.AddAsync);
app.UseExceptionHandler();
app.UseStatusCodePages(OpenAIErrors.StatusCodePage);
app.Use(RequestLimits.EnforceAsync);
app.UseAuthentication();
app.UseAuthorization();

app.MapDefaultEndpoints();
app.MapGrpcService<PlatformInfoService>();
app.MapGrpcService<InferenceGrpcService>();
app.MapGrpcService<StoredCompletionGrpcService>();
app.MapAdminApi();
app.MapFilesApi();
app.MapUploadsApi();
app.MapFineTuningApi();
app.MapEvalsApi();
app.MapGradersApi();
app.MapChatApi();
app.MapStoredCompletionsApi();
app.MapModelsApi();
app.MapUsageApi();
app.MapProjectKeysApi();

app.Run();
