using System.Net;

namespace FineTunePlatform.Training.Tests;

/// <summary>The admin API's training quota of a project: read and written only for projects that exist.</summary>
public sealed class TrainingQuotaApiTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    [Fact]
    public async Task Reading_or_setting_the_quota_of_a_project_that_does_not_exist_is_404()
    {
        using var admin = fixture.Platform.Http(TrainingPlatform.AdminKey);
        using var read = await admin.GetAsync("/admin/v1/projects/proj_missing/training-quota");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        Assert.Contains("\"param\":\"project_id\"", await read.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var set = await admin.PostAsync("/admin/v1/projects/proj_missing/training-quota", new StringContent("{\"priority\":1}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, set.StatusCode);

        using var existing = await admin.GetAsync($"/admin/v1/projects/{fixture.TeamA.ProjectId}/training-quota");
        Assert.Equal(HttpStatusCode.OK, existing.StatusCode);
    }
}
