using FineTunePlatform.ServiceDefaults;

namespace FineTunePlatform.Training.Scheduling;

/// <summary>Wakes the scheduler now (a job was queued or freed a slot) instead of at its next tick.</summary>
public sealed class SchedulerSignal : WakeSignal;
