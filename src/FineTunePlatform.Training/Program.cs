using FineTunePlatform.Training.Extensions;
using FineTunePlatform.Training.Grpc;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapGrpcService<PlatformInfoService>();
app.MapGrpcService<TrainingGrpcService>();
app.MapGrpcService<TrainerGrpcService>();

app.Run();
