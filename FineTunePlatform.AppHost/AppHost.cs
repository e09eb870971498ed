// The platform under .NET Aspire: every service, the trainer workers as replicas, and the servers they need
// (PostgreSQL with one database per service, Redis, RabbitMQ) as containers or as local executables, with telemetry
// in the Aspire dashboard and the gateway as the only external endpoint. Services read what WithReference gives them
// (ConnectionStrings__*, services__*__{http,grpc}__0), the same names ./run.sh and the tests use.
using FineTunePlatform.AppHost;
using Microsoft.Extensions.Configuration;

var builder = DistributedApplication.CreateBuilder(args);
InheritedSecrets.Forget();

var servers = PlatformServers.Add(builder);

// The secret internal services check on every gRPC call (only the gateway and platform services know it), and
// the first platform-admin key. Generated once and kept in the AppHost's user secrets unless given (./run.sh keeps
// its own per checkout in .run/secrets.env).
var internalToken = builder.AddParameter("internal-token", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);
var bootstrapAdminKey = builder.AddParameter("bootstrap-admin-key", new GenerateParameterDefault { MinLength = 40, Special = false }, secret: true, persist: true);

// The services keep no state of their own (it is in their databases and the broker), so any number of each may
// run; DCP's proxy spreads each service's endpoints over its replicas. One each by default: on two cores a second
// replica of everything costs more than it gives.
var serviceReplicas = builder.Configuration.GetValue("Platform:ServiceReplicas", 1);

var datasets = builder.AddProject<Projects.FineTunePlatform_Datasets>("datasets")
    .WithServer(servers.DatasetsDb)
    .WithServer(servers.RabbitMqFor("datasets"))
    .WithEnvironment("Internal__Token", internalToken)
    .WithReplicas(serviceReplicas)
    .WithRestartOnCrash()
    .WithHttpHealthCheck("/health");

var training = builder.AddProject<Projects.FineTunePlatform_Training>("training")
    .WithServer(servers.TrainingDb)
    .WithServer(servers.RabbitMqFor("training"))
    .WithReference(datasets)
    .WithEnvironment("Internal__Token", internalToken)
    .WithReplicas(serviceReplicas)
    .WithRestartOnCrash()
    .WithHttpHealthCheck("/health");

builder.AddProject<Projects.FineTunePlatform_Training_Worker>("training-worker")
    .WithServer(servers.RabbitMqFor("training-worker"))
    .WithReference(datasets)
    .WithReference(training).WaitFor(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithReplicas(builder.Configuration.GetValue("Platform:WorkerReplicas", 2))
    .WithRestartOnCrash()
    .WithHttpHealthCheck("/health");

var gateway = builder.AddProject<Projects.FineTunePlatform_Gateway>("gateway")
    .WithServer(servers.GatewayDb)
    .WithServer(servers.Redis)
    .WithServer(servers.RabbitMqFor("gateway"))
    .WithReference(datasets)
    .WithReference(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithEnvironment("Gateway__BootstrapAdminKey", bootstrapAdminKey)
    .WithExternalHttpEndpoints()
    .WithReplicas(serviceReplicas)
    .WithRestartOnCrash()
    .WithHttpHealthCheck("/health");

var evaluation = builder.AddProject<Projects.FineTunePlatform_Evaluation>("evaluation")
    .WithServer(servers.EvaluationDb)
    .WithServer(servers.RabbitMqFor("evaluation"))
    .WithReference(gateway)
    .WithReference(datasets)
    .WithReference(training)
    .WithEnvironment("Internal__Token", internalToken)
    .WithReplicas(serviceReplicas)
    .WithRestartOnCrash()
    .WithHttpHealthCheck("/health");

// The gateway serves /v1/evals through the evaluation service, which samples models through the gateway's
// InferenceService: each references the other (service discovery only; neither waits for the other). Training
// reads each job's verdict from the evaluation service, which reads jobs from training: the same.
gateway.WithReference(evaluation);
training.WithReference(evaluation);

builder.WritePlatformEnvironmentWhenReady(gateway, bootstrapAdminKey);
builder.ReserveLoopbackPorts(gateway);

builder.Build().Run();
