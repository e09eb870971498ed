using FineTunePlatform.Training.Worker.Extensions;
using FineTunePlatform.Training.Worker.Grpc;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapGrpcService<PlatformInfoService>();

app.Run();
