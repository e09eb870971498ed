using System.Net;
using System.Net.Http.Headers;

namespace FineTunePlatform.AppHost.Tests;

public sealed class AppHostTests
{
    private const string AdminKey = "sk-ft-apphost-test-admin-key-0123456789abcdef";

    [Fact]
    public async Task Gateway_becomes_healthy_and_lists_models()
    {
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.FineTunePlatform_AppHost>(
            [$"Parameters:bootstrap-admin-key={AdminKey}"]);
        await using var app = await appHost.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));

        await app.StartAsync(timeout.Token);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("gateway", timeout.Token);

        using var http = app.CreateHttpClient("gateway");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        var response = await http.GetAsync(new Uri("/v1/models", UriKind.Relative), timeout.Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"object\":\"list\"", await response.Content.ReadAsStringAsync(timeout.Token), StringComparison.Ordinal);
    }
}
