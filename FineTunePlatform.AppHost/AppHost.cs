// The platform's topology under .NET Aspire: the same services ./run.sh starts, with PostgreSQL (one database per
// service), Redis and RabbitMQ as containers, telemetry in the Aspire dashboard, and the gateway as the only
// external endpoint. Services read what WithReference gives them (ConnectionStrings__*, services__*__http__0).
var builder = DistributedApplication.CreateBuilder(args);

var postgres = builder.AddPostgres("postgres");
var datasetsDb = postgres.AddDatabase("datasetsdb");
var trainingDb = postgres.AddDatabase("trainingdb");
var evaluationDb = postgres.AddDatabase("evaluationdb");
var gatewayDb = postgres.AddDatabase("gatewaydb");

var redis = builder.AddRedis("redis");
var rabbitmq = builder.AddRabbitMQ("rabbitmq").WithManagementPlugin();

// The secret internal services check on every gRPC call (only the gateway and platform services know it), and
// the first platform-admin key. Generated once and kept in the AppHost's user secrets.
var internalToken = builder.AddParameter("internal-token", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);
var bootstrapAdminKey = builder.AddParameter("bootstrap-admin-key", new GenerateParameterDefault { MinLength = 40, Special = false }, secret: true, persist: true);

var datasets = builder.AddProject<Projects.FineTunePlatform_Datasets>("datasets")
    .WithReference(datasetsDb).WaitFor(datasetsDb)
    .WithReference(rabbitmq).WaitFor(rabbitmq)
    .WithEnvironment("Internal__Token", internalToken)
    .WithHttpHealthCheck("/health");

var training = builder.AddProject<Projects.FineTunePlatform_Training>("training")
    .WithReference(trainingDb).WaitFor(trainingDb)
    .WithReference(rabbitmq).WaitFor(rabbitmq)
    .WithReference(datasets)
    .WithEnvironment("Internal__Token", internalToken)
    .WithHttpHealthCheck("/health");

builder.AddProject<Projects.FineTunePlatform_Training_Worker>("training-worker")
    .WithReference(rabbitmq).WaitFor(rabbitmq)
    .WithReference(datasets)
    .WithReference(training).WaitFor(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithReplicas(2)
    .WithHttpHealthCheck("/health");

var gateway = builder.AddProject<Projects.FineTunePlatform_Gateway>("gateway")
    .WithReference(gatewayDb).WaitFor(gatewayDb)
    .WithReference(redis).WaitFor(redis)
    .WithReference(rabbitmq).WaitFor(rabbitmq)
    .WithReference(datasets)
    .WithReference(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithEnvironment("Gateway__BootstrapAdminKey", bootstrapAdminKey)
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health");

var evaluation = builder.AddProject<Projects.FineTunePlatform_Evaluation>("evaluation")
    .WithReference(evaluationDb).WaitFor(evaluationDb)
    .WithReference(rabbitmq).WaitFor(rabbitmq)
    .WithReference(gateway)
    .WithReference(datasets)
    .WithReference(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithHttpHealthCheck("/health");

// The gateway serves /v1/evals through the evaluation service, which samples models through the gateway's
// InferenceService: each references the other (service discovery only; neither waits for the other).
gateway.WithReference(evaluation);

builder.Build().Run();
