using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace FineTunePlatform.Testing;

/// <summary>
/// The real PostgreSQL, Redis and RabbitMQ that ./test.sh starts (eng/servers.sh) and announces through the
/// environment under the services' own configuration names. Each test host gets its own database and its own
/// RabbitMQ virtual host, so test classes running in parallel never see each other's rows or messages.
/// </summary>
public static class PlatformServers
{
    private static readonly HttpClient Management = new();

    public static string PostgresServer => Require("FTP_POSTGRES_SERVER");

    public static string Redis => Require("ConnectionStrings__redis");

    public static string RabbitMq => Require("ConnectionStrings__rabbitmq");

    public static string ServersDirectory => Require("FTP_SERVERS_DIR");

    /// <summary>A connection string for a database nobody else uses (the service's migration creates it).</summary>
    public static string NewDatabase(string prefix) =>
        new NpgsqlConnectionStringBuilder(PostgresServer) { Database = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(63, prefix.Length + 33)] }.ConnectionString;

    /// <summary>
    /// Creates a RabbitMQ virtual host for one test host, as the operators' management user, opens it to the services'
    /// user (the one in ConnectionStrings__rabbitmq) and returns its amqp:// URI.
    /// </summary>
    public static async Task<string> NewVirtualHostAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}";
        var management = new Uri(Require("FTP_RABBITMQ_MANAGEMENT"));
        var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(management.UserInfo)));
        var baseUri = new UriBuilder(management) { UserName = "", Password = "" }.Uri;

        using (var create = new HttpRequestMessage(HttpMethod.Put, new Uri(baseUri, $"api/vhosts/{name}")))
        {
            create.Headers.Authorization = new AuthenticationHeaderValue("Basic", credentials);
            (await Management.SendAsync(create)).EnsureSuccessStatusCode();
        }

        var serviceUser = Uri.UnescapeDataString(new Uri(RabbitMq).UserInfo.Split(':')[0]);
        using (var permit = new HttpRequestMessage(HttpMethod.Put, new Uri(baseUri, $"api/permissions/{name}/{Uri.EscapeDataString(serviceUser)}")))
        {
            permit.Headers.Authorization = new AuthenticationHeaderValue("Basic", credentials);
            permit.Content = JsonContent.Create(new { configure = ".*", write = ".*", read = ".*" });
            (await Management.SendAsync(permit)).EnsureSuccessStatusCode();
        }

        return new UriBuilder(RabbitMq) { Path = "/" + name }.Uri.ToString();
    }

    /// <summary>
    /// A queue of the virtual host of `rabbitMqUri` as the management API sees it: the messages it holds (ready and
    /// unacknowledged) and how many it has had acknowledged (the broker refreshes these every few seconds); zeros
    /// while it does not exist.
    /// </summary>
    public static async Task<(long Messages, long Acknowledged)> QueueStatsAsync(string rabbitMqUri, string queue)
    {
        var management = new Uri(Require("FTP_RABBITMQ_MANAGEMENT"));
        var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(management.UserInfo)));
        var baseUri = new UriBuilder(management) { UserName = "", Password = "" }.Uri;
        var virtualHost = new Uri(rabbitMqUri).AbsolutePath.TrimStart('/');
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUri, $"api/queues/{Uri.EscapeDataString(virtualHost)}/{Uri.EscapeDataString(queue)}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", credentials);
        using var response = await Management.SendAsync(request);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return (0, 0);
        }

        response.EnsureSuccessStatusCode();
        var queueInfo = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (Number(queueInfo, "messages"),
            queueInfo.TryGetProperty("message_stats", out var stats) ? Number(stats, "ack") : 0);

        static long Number(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"Environment variable {variable} is not set. Run the tests with ./test.sh, which starts the private "
                + "PostgreSQL, Redis and RabbitMQ servers, or source .test-run/<dir>/servers.env from eng/servers.sh start.");
}
