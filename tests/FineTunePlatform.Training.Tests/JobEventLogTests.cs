using FineTunePlatform.Training.Jobs;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// The rule that keeps a job's metrics at one event per step across attempts: which reported events carry a step
/// (those a resumed attempt's report replaces). The replacement itself is checked with a killed worker in
/// <see cref="FaultTests"/>.
/// </summary>
public sealed class JobEventLogTests
{
    [Theory]
    [InlineData("metrics", """{"step":3001,"train_loss":0.5}""", 3001)]
    [InlineData("metrics", """{"step":1}""", 1)]
    [InlineData("message", """{"step":3001}""", null)]
    [InlineData("metrics", """{"train_loss":0.5}""", null)]
    [InlineData("metrics", """{"step":"3001"}""", null)]
    [InlineData("metrics", """{"step":1.5}""", null)]
    [InlineData("metrics", """[1]""", null)]
    [InlineData("metrics", "not json", null)]
    [InlineData("metrics", "", null)]
    public void A_metrics_event_names_its_step_and_nothing_else_does(string type, string data, int? step) =>
        Assert.Equal(step, JobEventLog.MetricsStep(type, data));
}
