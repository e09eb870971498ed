using FineTunePlatform.Evaluation.Extensions;
using FineTunePlatform.Evaluation.Grpc;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapGrpcService<PlatformInfoService>();
app.MapGrpcService<EvaluationGrpcService>();

app.Run();
