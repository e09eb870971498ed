namespace FineTunePlatform.Training.Worker.Training;

/// <summary>Settings of one trainer worker process (section Training:Worker).</summary>
public sealed class WorkerOptions
{
    /// <summary>Stable within a process, unique across them; the lease holder the training service sees.</summary>
    public string WorkerId { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>Jobs trained at once. Each local job uses the machine's cores, so one is the sensible default.</summary>
    public int Slots { get; set; } = 1;

    /// <summary>How often a running job renews its lease, reports progress and learns of a cancel or pause.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Validation loss and accuracy every this many steps (and at every epoch end) when a job has a validation file.</summary>
    public int ValidationEverySteps { get; set; } = 10;

    /// <summary>How often the worker tells the training service it is alive and how many slots it has.</summary>
    public TimeSpan PresenceInterval { get; set; } = TimeSpan.FromSeconds(2);
}
