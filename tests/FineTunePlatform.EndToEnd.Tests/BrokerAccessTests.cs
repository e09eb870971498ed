using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Testing;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace FineTunePlatform.EndToEnd.Tests;

/// <summary>
/// The broker eng/servers/rabbitmq.sh makes (the same script the AppHost runs): no guest, a services' user that can
/// reach only the platform's virtual host and not the management API, and an operators' administrator for it.
/// </summary>
public sealed class BrokerAccessTests
{
    private static readonly Uri Services = new(PlatformServers.RabbitMq);
    private static readonly Uri Management = new(Environment.GetEnvironmentVariable("FTP_RABBITMQ_MANAGEMENT")!);

    [Fact]
    public async Task Guest_is_refused_over_AMQP_and_by_the_management_API()
    {
        var guest = new UriBuilder(Services) { UserName = "guest", Password = "guest", Path = "/" }.Uri;
        var refused = await Assert.ThrowsAsync<BrokerUnreachableException>(() => ConnectAsync(guest));
        Assert.IsType<AuthenticationFailureException>(refused.InnerException);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ManagementAsync("api/overview", "guest", "guest")).StatusCode);
    }

    [Fact]
    public async Task The_services_user_has_no_tag_no_management_access_and_no_permission_on_the_default_virtual_host()
    {
        await using (await ConnectAsync(Services))
        {
        }

        var (admin, adminPassword) = Credentials(Management);
        var (user, password) = Credentials(Services);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ManagementAsync("api/overview", user, password)).StatusCode);

        // As the operators see it: the services' user has no tag (no management, no administrator).
        using var answer = await ManagementAsync($"api/users/{Uri.EscapeDataString(user)}", admin, adminPassword);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        var tags = JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("tags");
        Assert.Empty(tags.EnumerateArray());
        // Its permissions are on the platform's virtual host (and the ones each test host gets), never on "/".
        using var permissions = await ManagementAsync($"api/users/{Uri.EscapeDataString(user)}/permissions", admin, adminPassword);
        var virtualHosts = JsonDocument.Parse(await permissions.Content.ReadAsStringAsync()).RootElement.EnumerateArray()
            .Select(permission => permission.GetProperty("vhost").GetString()).ToList();
        Assert.Contains(Services.AbsolutePath.TrimStart('/'), virtualHosts);
        Assert.DoesNotContain("/", virtualHosts);
        using var users = await ManagementAsync("api/users", admin, adminPassword);
        Assert.DoesNotContain("\"guest\"", await users.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private const string Events = "FineTunePlatform.Contracts.IntegrationEvents:";

    /// <summary>
    /// The per-service users exactly as eng/servers/rabbitmq-permissions.tsv defines them (the file rabbitmq.sh makes
    /// the platform's users from), on a virtual host of this test's, against the exchanges and queues MassTransit
    /// declares: only the owner of a message type can publish it, nobody reads another service's queue, nobody can
    /// tap an event it does not consume, and nobody declares anything outside its own names. That the services run
    /// under these users is the AppHost test's (every service starts, a job trains and its events arrive).
    /// </summary>
    [Fact]
    public async Task Each_service_user_publishes_only_its_own_events_and_reads_only_its_own_queues()
    {
        await using var users = await ServiceUsers.CreateAsync();
        string[] everyone = ["datasets", "training", "training-worker", "evaluation", "gateway"];

        async Task AllowedOnlyFor(string[] allowed, string what, Func<IChannel, Task> action)
        {
            foreach (var service in everyone)
            {
                var code = await users.ReplyCodeAsync(service, action);
                Assert.True(allowed.Contains(service) ? code == 200 : code == 403,
                    $"{service}: {what} answered {code}, expected {(allowed.Contains(service) ? "success" : "403 access refused")}");
            }
        }

        // Publishing an event: its owner only.
        await AllowedOnlyFor(["evaluation"], "publish FineTunedModelEvaluated", channel => PublishAsync(channel, Events + "FineTunedModelEvaluated"));
        await AllowedOnlyFor(["training"], "publish TrainingJobFinished", channel => PublishAsync(channel, Events + "TrainingJobFinished"));
        await AllowedOnlyFor(["training"], "publish ModelAccessChanged", channel => PublishAsync(channel, Events + "ModelAccessChanged"));
        await AllowedOnlyFor(["datasets"], "publish DatasetValidated", channel => PublishAsync(channel, Events + "DatasetValidated"));
        // TrainJob goes to the workers' queue through its exchange: the scheduler sends it; a worker may put one
        // into its own queue (its exchange has the queue's name), nobody else.
        await AllowedOnlyFor(["training", "training-worker"], "send to train-job", channel => PublishAsync(channel, "train-job"));
        await AllowedOnlyFor([], "publish TrainJob by type", channel => PublishAsync(channel, Events + "TrainJob"));

        // Reading a queue: its consumer's (and train-job the scheduler's too: it binds the queue it sends to).
        await AllowedOnlyFor(["training-worker", "training"], "read train-job", channel => channel.BasicGetAsync("train-job", autoAck: false));
        await AllowedOnlyFor(["evaluation"], "read start-job-evaluation", channel => channel.BasicGetAsync("start-job-evaluation", autoAck: false));
        await AllowedOnlyFor(["gateway"], "read training-job-finished", channel => channel.BasicGetAsync("training-job-finished", autoAck: false));
        await AllowedOnlyFor(["training"], "read fine-tuned-model-evaluated", channel => channel.BasicGetAsync("fine-tuned-model-evaluated", autoAck: false));

        // Tapping an event into a queue of one's own (a bus endpoint's name): only its consumers.
        await AllowedOnlyFor(["training", "evaluation"], "bind FineTunedModelEvaluated to an own queue", channel => TapAsync(channel, Events + "FineTunedModelEvaluated"));
        await AllowedOnlyFor(["training", "evaluation", "gateway"], "bind TrainingJobFinished to an own queue", channel => TapAsync(channel, Events + "TrainingJobFinished"));

        // Declaring anything outside one's own names.
        await AllowedOnlyFor([], "declare a queue of another name", channel => channel.QueueDeclareAsync("anything-else", durable: false, exclusive: false, autoDelete: true));
        await AllowedOnlyFor([], "declare an exchange of another name", channel => channel.ExchangeDeclareAsync("anything-else", ExchangeType.Fanout));
    }

    private static Task PublishAsync(IChannel channel, string exchange) =>
        channel.BasicPublishAsync(exchange, "", mandatory: false, body: "{}"u8.ToArray()).AsTask();

    private static async Task TapAsync(IChannel channel, string exchange)
    {
        var queue = $"tap_test_bus_{Guid.NewGuid():N}";
        await channel.QueueDeclareAsync(queue, durable: false, exclusive: true, autoDelete: true);
        await channel.QueueBindAsync(queue, exchange, "");
    }

    /// <summary>A user per service with the file's permissions on a fresh virtual host holding the platform's exchanges and queues.</summary>
    private sealed class ServiceUsers : IAsyncDisposable
    {
        private static readonly string[] Exchanges =
            ["FineTunedModelEvaluated", "TrainingJobFinished", "ModelAccessChanged", "DatasetValidated", "TrainJob", "IntegrationEvent"];

        private static readonly string[] Queues = ["train-job", "start-job-evaluation", "training-job-finished", "fine-tuned-model-evaluated"];

        private readonly string _virtualHost;
        private readonly Dictionary<string, string> _users = [];

        private ServiceUsers(string virtualHost) => _virtualHost = virtualHost;

        public static async Task<ServiceUsers> CreateAsync()
        {
            var users = new ServiceUsers($"broker-users-{Guid.NewGuid():N}");
            var (admin, _) = Credentials(Management);
            await ManagementPutAsync($"api/vhosts/{users._virtualHost}", new { });
            await ManagementPutAsync($"api/permissions/{users._virtualHost}/{Uri.EscapeDataString(admin)}", new { configure = ".*", write = ".*", read = ".*" });
            foreach (var line in await File.ReadAllLinesAsync(Path.Combine(RepositoryRoot.Path, "eng", "servers", "rabbitmq-permissions.tsv")))
            {
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }

                var (service, configure, write, read) = line.Split('\t') is [var a, var b, var c, var d] ? (a, b, c, d) : throw new InvalidDataException($"not four tab-separated columns: {line}");
                var user = $"{users._virtualHost}-{service}";
                await ManagementPutAsync($"api/users/{user}", new { password = user, tags = "" });
                await ManagementPutAsync($"api/permissions/{users._virtualHost}/{user}", new { configure, write, read });
                users._users[service] = user;
            }

            await users.DeclareTopologyAsync();
            return users;
        }

        /// <summary>The exchanges and queues as the services' MassTransit declares them (fanout exchanges, durable queues bound to theirs), made by the administrator.</summary>
        private async Task DeclareTopologyAsync()
        {
            await using var connection = await ConnectAsync(new UriBuilder(Services) { UserName = Credentials(Management).User, Password = Credentials(Management).Password, Path = "/" + _virtualHost }.Uri);
            await using var channel = await connection.CreateChannelAsync();
            foreach (var type in Exchanges)
            {
                await channel.ExchangeDeclareAsync(Events + type, ExchangeType.Fanout, durable: true);
            }

            foreach (var queue in Queues)
            {
                await channel.ExchangeDeclareAsync(queue, ExchangeType.Fanout, durable: true);
                await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
                await channel.QueueBindAsync(queue, queue, "");
            }
        }

        /// <summary>200 when `action` as the service's user succeeds, else the code the broker closed the channel with (403: access refused).</summary>
        public async Task<int> ReplyCodeAsync(string service, Func<IChannel, Task> action)
        {
            var user = _users[service];
            await using var connection = await ConnectAsync(new UriBuilder(Services) { UserName = user, Password = user, Path = "/" + _virtualHost }.Uri);
            // With confirmations a publish waits for the broker's answer, so a refused one fails here rather than later.
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
            try
            {
                await action(channel);
                return 200;
            }
            catch (OperationInterruptedException ex)
            {
                return ex.ShutdownReason?.ReplyCode ?? channel.CloseReason?.ReplyCode ?? 0;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var user in _users.Values)
            {
                await ManagementDeleteAsync($"api/users/{user}");
            }

            await ManagementDeleteAsync($"api/vhosts/{_virtualHost}");
        }

        private static async Task ManagementPutAsync(string path, object body)
        {
            using var request = ManagementRequest(HttpMethod.Put, path);
            request.Content = System.Net.Http.Json.JsonContent.Create(body);
            using var http = new HttpClient();
            (await http.SendAsync(request)).EnsureSuccessStatusCode();
        }

        private static async Task ManagementDeleteAsync(string path)
        {
            using var request = ManagementRequest(HttpMethod.Delete, path);
            using var http = new HttpClient();
            await http.SendAsync(request);
        }

        private static HttpRequestMessage ManagementRequest(HttpMethod method, string path)
        {
            var (admin, password) = Credentials(Management);
            var request = new HttpRequestMessage(method, new Uri(new UriBuilder(Management) { UserName = "", Password = "" }.Uri, path));
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{admin}:{password}")));
            return request;
        }
    }

    private static async Task<IConnection> ConnectAsync(Uri uri) =>
        await new ConnectionFactory { Uri = uri, RequestedConnectionTimeout = TimeSpan.FromSeconds(10) }.CreateConnectionAsync();

    private static (string User, string Password) Credentials(Uri uri)
    {
        var parts = uri.UserInfo.Split(':', 2);
        return (Uri.UnescapeDataString(parts[0]), Uri.UnescapeDataString(parts[1]));
    }

    private static async Task<HttpResponseMessage> ManagementAsync(string path, string user, string password)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new UriBuilder(Management) { UserName = "", Password = "" }.Uri, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        return await http.SendAsync(request);
    }
}
