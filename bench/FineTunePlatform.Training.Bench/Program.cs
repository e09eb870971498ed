using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FineTunePlatform.Contracts;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Training.Tests;
using Grpc.Core;
using Grpc.Net.Client;

// Training orchestration figures (targets: dispatch p50 < 200 ms, event p99 < 100 ms, 1,000 queued jobs dispatched
// fairly). Services run in this process on real sockets against the private servers:
//   eng/servers.sh start /tmp/bench-servers && . /tmp/bench-servers/servers.env
//   dotnet run -c Release --project bench/FineTunePlatform.Training.Bench [dispatch-jobs] [queued-jobs]
var dispatchJobs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 40;
var queuedJobs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000;

TrainingPlatform.UseSourceContentRoots();

await DispatchAndEventLatencyAsync(dispatchJobs);
await SchedulerThroughputAsync(queuedJobs, projects: 10);

// Create -> running (the scheduler's dispatch) and create -> claimed (a worker holds the lease), one job at a time
// with an idle worker; then event latency: an event's commit (the worker's report reaching the training service)
// to its arrival at an SSE client of the gateway.
static async Task DispatchAndEventLatencyAsync(int jobs)
{
    await using var platform = await TrainingPlatform.StartAsync("benchdispatch", workers: 1);
    var (_, key) = await platform.Admin.CreateProjectAsync("member");
    var file = await platform.UploadTrainingFileAsync(key);
    await Task.Delay(TimeSpan.FromSeconds(2)); // the worker has announced itself
    var ids = new List<string>();
    for (var i = 0; i < jobs; i++)
    {
        var id = (await platform.CreateJobAsync(key, file, epochs: 1)).GetProperty("id").GetString()!;
        await platform.WaitForJobAsync(key, id, TrainingPlatform.Finished);
        ids.Add(id);
    }

    var marks = await platform.QueryTrainingAsync(
        $"""
        SELECT j."Id", j."CreatedAt",
          (SELECT min(e."CreatedAt") FROM job_events e WHERE e."JobId" = j."Id" AND e."Message" = 'Fine-tuning job started'),
          (SELECT min(e."CreatedAt") FROM job_events e WHERE e."JobId" = j."Id" AND e."Message" LIKE 'Worker % is training attempt 1%')
        FROM jobs j WHERE j."Id" = ANY(ARRAY['{string.Join("','", ids)}'])
        """,
        reader => (Dispatch: (reader.GetDateTime(2) - reader.GetDateTime(1)).TotalMilliseconds, Claim: (reader.GetDateTime(3) - reader.GetDateTime(1)).TotalMilliseconds));
    Report($"dispatch latency, create -> running ({jobs} jobs, idle worker)", marks.Select(mark => mark.Dispatch));
    Report("create -> claimed by the worker", marks.Select(mark => mark.Claim));

    // Event latency on a longer job, read through the gateway's SSE stream.
    var jobId = (await platform.CreateJobAsync(key, file, epochs: 30)).GetProperty("id").GetString()!;
    using var http = platform.Http(key);
    using var response = await http.GetAsync($"/v1/fine_tuning/jobs/{jobId}/events?stream=true", HttpCompletionOption.ResponseHeadersRead);
    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
    var received = new Dictionary<string, DateTime>();
    while (await reader.ReadLineAsync() is { } line)
    {
        if (line.StartsWith("data: {", StringComparison.Ordinal))
        {
            var at = DateTime.UtcNow;
            received[JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("id").GetString()!] = at;
        }
    }

    var committed = await platform.QueryTrainingAsync($"SELECT \"Id\", \"CreatedAt\" FROM job_events WHERE \"JobId\" = '{jobId}'", row => (Id: row.GetString(0), At: row.GetDateTime(1)));
    // Events from before the stream opened were history, not live: measure the ones that arrived while watching.
    var opened = received.Values.Min();
    var live = committed.Where(row => received.ContainsKey(row.Id) && row.At > opened).Select(row => (received[row.Id] - row.At).TotalMilliseconds).ToList();
    Report($"event latency, training service commit -> SSE client ({live.Count} live events)", live);
}

// 1,000 jobs queued across 10 projects with no worker, then a worker announces 1,000 slots: how fast the scheduler
// dispatches them all, and whether every project was served in turn (no starvation).
static async Task SchedulerThroughputAsync(int jobs, int projects)
{
    await using var platform = await TrainingPlatform.StartAsync("benchscheduler", workers: 0);
    var teams = new List<(string ProjectId, string Key, string File)>();
    for (var i = 0; i < projects; i++)
    {
        var (projectId, key) = await platform.Admin.CreateProjectAsync("member");
        await platform.Admin.SetTrainingQuotaAsync(projectId, maxConcurrentJobs: jobs);
        teams.Add((projectId, key, await platform.UploadTrainingFileAsync(key)));
    }

    var creating = Stopwatch.StartNew();
    await Parallel.ForEachAsync(Enumerable.Range(0, jobs), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
    {
        var team = teams[i % projects];
        await platform.CreateJobAsync(team.Key, team.File, epochs: 1);
    });
    Console.WriteLine($"created {jobs} jobs in {creating.Elapsed.TotalSeconds:0.0} s ({jobs / creating.Elapsed.TotalSeconds:0} jobs/s through the gateway)");

    using var channel = GrpcChannel.ForAddress(platform.Training.GrpcAddress);
    var trainer = new TrainerService.TrainerServiceClient(channel);
    var headers = new Metadata { { CallerMetadata.InternalToken, platform.Environment.InternalToken } };
    var dispatching = Stopwatch.StartNew();
    await trainer.RegisterWorkerAsync(new WorkerPresence { WorkerId = "bench-capacity", Slots = jobs }, headers);
    while ((await platform.QueryTrainingAsync("SELECT count(*) FROM jobs WHERE \"Status\" = 'running'", row => row.GetInt64(0)))[0] < jobs)
    {
        await Task.Delay(10);
    }

    dispatching.Stop();
    Console.WriteLine($"scheduler: dispatched {jobs} queued jobs from {projects} projects in {dispatching.Elapsed.TotalMilliseconds:0} ms ({jobs / dispatching.Elapsed.TotalSeconds:0} jobs/s)");

    var order = await platform.QueryTrainingAsync(
        "SELECT j.\"ProjectId\" FROM job_events e JOIN jobs j ON j.\"Id\" = e.\"JobId\" WHERE e.\"Message\" = 'Fine-tuning job started' ORDER BY e.\"Sequence\"",
        row => row.GetString(0));
    var served = teams.ToDictionary(team => team.ProjectId, _ => 0);
    var worstGap = 0;
    foreach (var projectId in order)
    {
        served[projectId]++;
        worstGap = Math.Max(worstGap, served.Values.Max() - served.Values.Min());
    }

    await Task.Delay(TimeSpan.FromSeconds(1)); // the pass's TrainJob sends follow its commit; let them finish before shutdown
    Console.WriteLine($"fairness: at every point of the dispatch order the most- and least-served projects differ by at most {worstGap} job(s)");
}

static void Report(string what, IEnumerable<double> samples)
{
    var sorted = samples.Order().ToArray();
    double Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    Console.WriteLine($"{what}: p50 {Percentile(0.50):0.0} ms, p99 {Percentile(0.99):0.0} ms, max {sorted[^1]:0.0} ms");
}
