using FineTunePlatform.Datasets.Extensions;
using FineTunePlatform.Datasets.Grpc;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddApplicationServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapGrpcService<PlatformInfoService>();
app.MapGrpcService<DatasetGrpcService>();

app.Run();
