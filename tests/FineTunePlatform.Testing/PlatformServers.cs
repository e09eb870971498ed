using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
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

    /// <summary>Creates a RabbitMQ virtual host for one test host and returns its amqp:// URI.</summary>
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

        using (var permit = new HttpRequestMessage(HttpMethod.Put, new Uri(baseUri, $"api/permissions/{name}/guest")))
        {
            permit.Headers.Authorization = new AuthenticationHeaderValue("Basic", credentials);
            permit.Content = JsonContent.Create(new { configure = ".*", write = ".*", read = ".*" });
            (await Management.SendAsync(permit)).EnsureSuccessStatusCode();
        }

        return new UriBuilder(RabbitMq) { Path = "/" + name }.Uri.ToString();
    }

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"Environment variable {variable} is not set. Run the tests with ./test.sh, which starts the private "
                + "PostgreSQL, Redis and RabbitMQ servers, or source .test-run/<dir>/servers.env from eng/servers.sh start.");
}
