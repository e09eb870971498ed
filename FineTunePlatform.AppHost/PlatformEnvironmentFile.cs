using Microsoft.Extensions.Configuration;

namespace FineTunePlatform.AppHost;

internal static class PlatformEnvironmentFile
{
    /// <summary>
    /// Once the gateway is healthy, writes what a user needs to call the platform to `Platform:EnvironmentFile` (when
    /// set; ./run.sh sets .run/platform.env and waits for it): FINETUNE_BASE_URL, FINETUNE_ADMIN_KEY (the bootstrap
    /// platform-admin key) and FINETUNE_DASHBOARD_URL (the dashboard with its login token, so it opens without a
    /// separate token step). Written to a temporary name and renamed, so a reader never sees half a file. The admin
    /// key has its own name, not FINETUNE_API_KEY (the project key `ftune` and the SDK samples use): sourcing the
    /// file again after a restart must not switch a shell from a team's key to the admin's.
    /// </summary>
    public static void WritePlatformEnvironmentWhenReady(
        this IDistributedApplicationBuilder builder, IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ParameterResource> adminKey)
    {
        if (builder.Configuration["Platform:EnvironmentFile"] is not { Length: > 0 } file)
        {
            return;
        }

        var path = Path.GetFullPath(file);
        builder.Eventing.Subscribe<ResourceReadyEvent>(gateway.Resource, async (_, cancellationToken) =>
        {
            var baseUrl = gateway.GetEndpoint("http").Url.TrimEnd('/') + "/v1";
            var lines = new List<string>
            {
                $"FINETUNE_BASE_URL={baseUrl}",
                $"FINETUNE_ADMIN_KEY={await adminKey.Resource.GetValueAsync(cancellationToken)}",
            };
            if (DashboardUrl(builder.Configuration) is { } dashboard)
            {
                lines.Add($"FINETUNE_DASHBOARD_URL={dashboard}");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temporary = path + ".tmp";
            await File.WriteAllLinesAsync(temporary, lines, cancellationToken);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            File.Move(temporary, path, overwrite: true);
        });
    }

    private static string? DashboardUrl(IConfiguration configuration)
    {
        var urls = configuration["ASPNETCORE_URLS"];
        if (string.IsNullOrEmpty(urls))
        {
            return null;
        }

        var url = urls.Split(';', StringSplitOptions.RemoveEmptyEntries)[0].TrimEnd('/');
        return configuration["AppHost:BrowserToken"] is { Length: > 0 } token ? $"{url}/login?t={token}" : url;
    }
}
