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
