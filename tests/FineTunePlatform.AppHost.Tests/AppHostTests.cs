using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Testing;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace FineTunePlatform.AppHost.Tests;

/// <summary>
/// The platform as `./run.sh` runs it: the AppHost starts the servers as executables (no container runtime here),
/// every service and a trainer worker, each becomes healthy, and a team's first steps work through the gateway with
/// the official OpenAI SDK. The dashboard answers.
/// </summary>
public sealed class AppHostTests
{
    private const string AdminKey = "sk-ft-apphost-test-admin-key-0123456789abcdef";

    private static readonly string[] Resources = ["postgres", "redis", "rabbitmq", "datasets", "training", "training-worker", "evaluation", "gateway"];

    [Fact]
    public async Task The_AppHost_starts_every_resource_healthy_and_a_team_fine_tunes_and_chats_through_the_gateway()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var data = Path.Combine(RepositoryRoot.Path, ".test-run", "apphost-" + Guid.NewGuid().ToString("N")[..8]);
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.FineTunePlatform_AppHost>(
            [
                "--Platform:Servers=executables",
                $"--Platform:DataDirectory={data}",
                "--Platform:WorkerReplicas=1",
                $"--Parameters:bootstrap-admin-key={AdminKey}",
                "--Parameters:internal-token=apphost-test-internal-token-0123456789",
                "--Parameters:postgres-password=apphostTestPassword0123",
                "--Parameters:rabbitmq-password=apphostTestBrokerPassword0123",
                "--Parameters:rabbitmq-admin-password=apphostTestBrokerAdmin0123",
                // Keep the ports the AppHost reserved for itself (LoopbackPortReservations) instead of DCP's random ones.
                "--DcpPublisher:RandomizePorts=false",
            ],
            (options, _) => options.DisableDashboard = false,
            timeout.Token);
        await using var app = await appHost.BuildAsync(timeout.Token);
        try
        {
            await app.StartAsync(timeout.Token);
            foreach (var resource in Resources)
            {
                await app.ResourceNotifications.WaitForResourceHealthyAsync(resource, timeout.Token);
            }

            var gateway = app.GetEndpoint("gateway", "http");
            var admin = new GatewayAdmin(new ServiceAddresses(gateway, app.GetEndpoint("gateway", "grpc")), AdminKey);
            var (_, key) = await admin.CreateProjectAsync("member");
            var client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(gateway, "v1") });

            var lines = new StringBuilder();
            for (var i = 0; i < 12; i++)
            {
                lines.Append(JsonSerializer.Serialize(new
                {
                    messages = new object[]
                    {
                        new { role = "user", content = $"ticket {i}: where is my refund?" },
                        new { role = "assistant", content = i % 2 == 0 ? "billing" : "support" },
                    },
                })).Append('\n');
            }

            OpenAIFile file = await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromString(lines.ToString()), "tickets.jsonl", FileUploadPurpose.FineTune);
#pragma warning disable OPENAI001 // the SDK marks its fine-tuning client experimental
            // Three epochs set by hand (through the SDK's protocol method: its typed options do not expose n_epochs):
            // "auto" trains a 12-example file for about a minute on a quiet machine, many on a loaded one.
            var request = BinaryContent.Create(BinaryData.FromObjectAsJson(new
            {
                model = "local-nano",
                training_file = file.Id,
                suffix = "apphost",
                method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 3 } } },
            }));
            var job = await client.GetFineTuningClient().FineTuneAsync(request, waitUntilCompleted: true, new RequestOptions { CancellationToken = timeout.Token });
            Assert.Equal(FineTuningStatus.Succeeded, job.Status);
            var model = job.Value!;
#pragma warning restore OPENAI001

            ChatCompletion answer = await client.GetChatClient(model).CompleteChatAsync([new UserChatMessage("ticket 3: where is my refund?")], cancellationToken: timeout.Token);
            Assert.Equal(model, answer.Model);
            Assert.True(answer.Usage.OutputTokenCount > 0, "the tuned model generated nothing");

            using var dashboard = new HttpClient();
            var login = await dashboard.GetAsync(await app.GetDashboardUrlAsync(timeout.Token) ?? throw new InvalidOperationException("no dashboard URL"), timeout.Token);
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}
