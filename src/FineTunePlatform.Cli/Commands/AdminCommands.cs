using System.CommandLine;
using System.Net.Http.Json;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>`ftune admin ...`: the platform team's settings (an admin key), through the admin API beside /v1.</summary>
public static class AdminCommands
{
    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var projectId = new Argument<string>("project") { Description = "The project's id (proj_...)." };
        var keyId = new Option<string?>("--key") { Description = "A key of that project (key_...): set that key's own limits, on top of the project's." };
        var requests = new Option<int?>("--requests-per-minute") { Description = "Requests per minute (left out: the default)." };
        var tokens = new Option<int?>("--tokens-per-minute") { Description = "Tokens per minute, prompt plus completion budget (left out: the default)." };
        var limits = new Command("limits", "Set a project's rate limits, or one key's with --key. A limit left out goes back to the default: the platform's for a project, only the project's for a key.")
        {
            projectId, keyId, requests, tokens,
        };
        limits.SetAction(async (parse, cancellationToken) =>
        {
            var platform = connection.Open(parse);
            var project = Uri.EscapeDataString(parse.GetValue(projectId)!);
            var path = parse.GetValue(keyId) is { } key
                ? $"../admin/v1/projects/{project}/keys/{Uri.EscapeDataString(key)}/limits"
                : $"../admin/v1/projects/{project}/limits";
            var body = new { requests_per_minute = parse.GetValue(requests), tokens_per_minute = parse.GetValue(tokens) };
            var set = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(platform.Root, path)) { Content = JsonContent.Create(body) }, cancellationToken);
            await output.ShowAsync(parse, set, text => text.WriteLineAsync($"{Table.Text(set, "id")}  requests/min {Limit(set, "requests_per_minute")}  tokens/min {Limit(set, "tokens_per_minute")}"));
            return 0;
        });

        return new Command("admin", "Platform administration (needs an admin key).") { limits };
    }

    private static string Limit(System.Text.Json.JsonElement limits, string name) =>
        limits.TryGetProperty(name, out var value) && value.ValueKind == System.Text.Json.JsonValueKind.Number ? value.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture) : "default";
}
