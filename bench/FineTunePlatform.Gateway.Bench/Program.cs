using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

// Added latency of the gateway: the same chat completion sent straight to an upstream, through a bare pass-through
// proxy process (the floor of any extra hop on this machine), and through the gateway (auth, rate limiting and usage
// on), open-loop at fixed rates, p50/p99 side by side in one run.
// Needs the private servers: eng/servers.sh start /tmp/bench-servers && . /tmp/bench-servers/servers.env
//   dotnet run -c Release --project bench/FineTunePlatform.Gateway.Bench [seconds-per-rate] [rates...]
// Diagnostics: BENCH_SLOW=1 prints the slowest 1% of each phase as start-offset:latency (stalls show as clusters);
// BENCH_GATEWAY_ENV="NAME=value;..." passes settings to the gateway process (e.g. DOTNET_gcServer=0).
if (args is ["--proxy", var listenPort, var upstreamUrl])
{
    await RunBareProxyAsync(int.Parse(listenPort, CultureInfo.InvariantCulture), upstreamUrl);
    return;
}

var seconds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
int[] rates = args.Length > 1 ? args[1..].Select(rate => int.Parse(rate, CultureInfo.InvariantCulture)).ToArray() : [200, 1000, 2000];

var upstreamPort = FreePort();
var upstream = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = Directory.CreateTempSubdirectory().FullName });
upstream.Logging.ClearProviders();
upstream.WebHost.UseUrls($"http://127.0.0.1:{upstreamPort}");
var upstreamApp = upstream.Build();
var completion = Encoding.UTF8.GetBytes("""{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"echo-1","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}""");
upstreamApp.MapPost("/v1/chat/completions", async context =>
{
    await context.Request.Body.CopyToAsync(Stream.Null);
    context.Response.ContentType = "application/json";
    await context.Response.Body.WriteAsync(completion);
});
await upstreamApp.StartAsync();

var gatewayPort = FreePort();
var adminKey = "sk-ft-bench-admin-" + Guid.NewGuid().ToString("N");
var gatewayDll = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "FineTunePlatform.Gateway", "bin",
    AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug", "net10.0", "FineTunePlatform.Gateway.dll");
var start = new ProcessStartInfo("dotnet", [Path.GetFullPath(gatewayDll)])
{
    WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(gatewayDll))!,
    RedirectStandardOutput = true,
    RedirectStandardError = true,
};
start.Environment["ConnectionStrings__gatewaydb"] = Require("FTP_POSTGRES_SERVER").Replace("Database=postgres", $"Database=bench_gateway_{Guid.NewGuid():N}", StringComparison.Ordinal);
start.Environment["Kestrel__Endpoints__http__Url"] = $"http://127.0.0.1:{gatewayPort}";
start.Environment["Kestrel__Endpoints__grpc__Url"] = $"http://127.0.0.1:{FreePort()}";
start.Environment["Internal__Token"] = "bench-internal-token-" + Guid.NewGuid().ToString("N");
start.Environment["Gateway__BootstrapAdminKey"] = adminKey;
start.Environment["Gateway__Upstreams__echo__BaseUrl"] = $"http://127.0.0.1:{upstreamPort}/v1";
start.Environment["Gateway__Upstreams__echo__Models__0"] = "echo-1";
start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
start.Environment["Logging__LogLevel__Default"] = "Warning";
foreach (var setting in (Environment.GetEnvironmentVariable("BENCH_GATEWAY_ENV") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
{
    start.Environment[setting.Split('=')[0]] = setting.Split('=')[1];
}

using var gateway = Process.Start(start)!;
_ = gateway.StandardOutput.ReadToEndAsync();
_ = gateway.StandardError.ReadToEndAsync();

// The floor any proxy pays here: a bare ASP.NET Core pass-through (no auth, limits or usage) in its own process,
// forwarding with the same HttpClient pattern. Gateway minus proxy is what the gateway's own work adds.
var proxyPort = FreePort();
var proxyStart = new ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location, "--proxy", proxyPort.ToString(CultureInfo.InvariantCulture), $"http://127.0.0.1:{upstreamPort}/v1/chat/completions"])
{
    RedirectStandardOutput = true,
    RedirectStandardError = true,
};
proxyStart.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
using var proxy = Process.Start(proxyStart)!;
_ = proxy.StandardOutput.ReadToEndAsync();
_ = proxy.StandardError.ReadToEndAsync();
try
{
    using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gatewayPort}") };
    for (var attempt = 0; ; attempt++)
    {
        try
        {
            if ((await probe.GetAsync(new Uri("/health", UriKind.Relative))).IsSuccessStatusCode)
            {
                break;
            }
        }
        catch (HttpRequestException) when (attempt < 300)
        {
        }

        await Task.Delay(100);
    }

    probe.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
    var project = (await (await probe.PostAsJsonAsync("/admin/v1/projects", new { name = "bench" })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
    await probe.PostAsJsonAsync($"/admin/v1/projects/{project}/limits", new { requests_per_minute = 10_000_000, tokens_per_minute = 1_000_000_000 });
    var key = (await (await probe.PostAsJsonAsync($"/admin/v1/projects/{project}/keys", new { name = "bench", role = "member" })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("value").GetString()!;

    using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 512, PooledConnectionLifetime = TimeSpan.FromMinutes(10) });
    var body = """{"model":"echo-1","messages":[{"role":"user","content":"How do I reset my password?"}],"max_tokens":16}""";
    async Task<(bool Ok, double Ms)> SendAsync(Uri url, string? apiKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (apiKey is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await client.SendAsync(request);
            await response.Content.CopyToAsync(Stream.Null);
            return (response.IsSuccessStatusCode, clock.Elapsed.TotalMilliseconds);
        }
        catch (HttpRequestException)
        {
            return (false, clock.Elapsed.TotalMilliseconds);
        }
    }

    var direct = new Uri($"http://127.0.0.1:{upstreamPort}/v1/chat/completions");
    var bare = new Uri($"http://127.0.0.1:{proxyPort}/v1/chat/completions");
    var through = new Uri($"http://127.0.0.1:{gatewayPort}/v1/chat/completions");
    for (var i = 0; i < 500; i++)
    {
        await SendAsync(direct, null);
        await SendAsync(bare, null);
        await SendAsync(through, key);
    }

    Console.WriteLine($"gateway added latency, {seconds} s per rate, open loop, {Environment.ProcessorCount} cores (load generator, upstream, proxy and gateway share them)");
    Console.WriteLine("rate/s | direct p50   p99  | bare proxy p50 p99 | gateway p50   p99  | added p50   p99  | over proxy p50 p99 | errors");
    foreach (var rate in rates)
    {
        // A second at the rate first, unmeasured: connections to open and the thread pool to grow are start-up costs,
        // not what a request adds once the gateway is serving.
        await RunAsync(rate, 1, () => SendAsync(direct, null));
        var directResult = await RunAsync(rate, seconds, () => SendAsync(direct, null));
        await RunAsync(rate, 1, () => SendAsync(bare, null));
        var proxyResult = await RunAsync(rate, seconds, () => SendAsync(bare, null));
        await RunAsync(rate, 1, () => SendAsync(through, key));
        var gatewayResult = await RunAsync(rate, seconds, () => SendAsync(through, key));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{rate,6} | {directResult.P50,8:F2} {directResult.P99,6:F2} | {proxyResult.P50,8:F2} {proxyResult.P99,6:F2} | {gatewayResult.P50,8:F2} {gatewayResult.P99,6:F2} | {gatewayResult.P50 - directResult.P50,8:F2} {gatewayResult.P99 - directResult.P99,6:F2} | {gatewayResult.P50 - proxyResult.P50,8:F2} {gatewayResult.P99 - proxyResult.P99,6:F2} | {directResult.Errors + proxyResult.Errors + gatewayResult.Errors} (achieved {gatewayResult.Achieved:F0}/s)"));
    }
}
finally
{
    proxy.Kill(entireProcessTree: true);
    gateway.Kill(entireProcessTree: true);
    await upstreamApp.StopAsync();
}

static async Task<(double P50, double P99, int Errors, double Achieved)> RunAsync(int rate, int seconds, Func<Task<(bool Ok, double Ms)>> send)
{
    // Open loop: requests start on schedule whether or not earlier ones finished, so queueing shows in the latency.
    var total = rate * seconds;
    var tasks = new Task<(bool Ok, double Ms)>[total];
    var clock = Stopwatch.StartNew();
    for (var i = 0; i < total; i++)
    {
        var due = TimeSpan.FromSeconds((double)i / rate);
        var wait = due - clock.Elapsed;
        if (wait > TimeSpan.FromMilliseconds(1))
        {
            await Task.Delay(wait);
        }

        tasks[i] = send();
    }

    var results = await Task.WhenAll(tasks);
    if (Environment.GetEnvironmentVariable("BENCH_SLOW") is not null)
    {
        var slow = Enumerable.Range(0, total).OrderByDescending(i => results[i].Ms).Take(total / 100).OrderBy(i => i).Select(i => $"{(double)i / rate:F2}s:{results[i].Ms:F1}");
        Console.WriteLine(string.Join(' ', slow));
    }

    var achieved = total / clock.Elapsed.TotalSeconds;
    var latencies = results.Select(result => result.Ms).Order().ToArray();
    return (latencies[(int)(latencies.Length * 0.5)], latencies[Math.Min(latencies.Length - 1, (int)(latencies.Length * 0.99))], results.Count(result => !result.Ok), achieved);
}

static async Task RunBareProxyAsync(int port, string upstreamUrl)
{
    var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = Directory.CreateTempSubdirectory().FullName });
    builder.Logging.ClearProviders();
    builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
    var app = builder.Build();
    using var upstreamClient = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 512 });
    var target = new Uri(upstreamUrl);
    app.MapPost("/v1/chat/completions", async context =>
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(body.ToArray()) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await upstreamClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(await response.Content.ReadAsStringAsync(context.RequestAborted));
    });
    await app.RunAsync();
}

static int FreePort()
{
    using var listener = new TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    return ((IPEndPoint)listener.LocalEndpoint).Port;
}

static string Require(string variable) => Environment.GetEnvironmentVariable(variable)
    ?? throw new InvalidOperationException($"{variable} is not set: eng/servers.sh start DIR, then source DIR/servers.env");
