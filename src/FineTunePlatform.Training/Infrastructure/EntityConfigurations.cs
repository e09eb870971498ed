using System.Text.Json;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTunePlatform.Training.Infrastructure;

internal sealed class TrainingJobConfiguration : IEntityTypeConfiguration<TrainingJob>
{
    public void Configure(EntityTypeBuilder<TrainingJob> builder)
    {
        builder.ToTable("jobs");
        builder.HasKey(job => job.Id);
        builder.Property(job => job.Id).HasMaxLength(64);
        builder.Property(job => job.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(job => job.Model).HasMaxLength(256).IsRequired();
        builder.Property(job => job.RootModel).HasMaxLength(64).IsRequired();
        builder.Property(job => job.TrainingFile).HasMaxLength(64).IsRequired();
        builder.Property(job => job.ValidationFile).HasMaxLength(64);
        builder.Property(job => job.Suffix).HasMaxLength(64);
        builder.Property(job => job.Metadata).HasColumnType("jsonb").IsRequired();
        builder.Property(job => job.Method).HasMaxLength(16).IsRequired();
        builder.Property(job => job.Status).HasMaxLength(24).IsRequired();
        builder.Property(job => job.FineTunedModel).HasMaxLength(256);
        builder.Property(job => job.ResultFile).HasMaxLength(64);
        builder.Property(job => job.ErrorCode).HasMaxLength(64);
        builder.Property(job => job.ErrorParam).HasMaxLength(64);
        builder.Property(job => job.LeaseOwner).HasMaxLength(128);
        builder.Property(job => job.EvalId).HasMaxLength(64);
        builder.Property(job => job.EvaluationVerdict).HasMaxLength(16);
        builder.Property(job => job.Version).IsRowVersion();
        // Set once at creation and read whole: one jsonb value, not four columns.
        builder.Property(job => job.Lora).HasColumnType("jsonb").HasConversion(
            lora => JsonSerializer.Serialize(lora, JsonSerializerOptions.Web),
            json => JsonSerializer.Deserialize<LoraSettings>(json, JsonSerializerOptions.Web));
        builder.Ignore(job => job.OutputModelId);
        // Listing is per project, newest first; the scheduler reads by status.
        builder.HasIndex(job => new { job.ProjectId, job.CreatedAt });
        builder.HasIndex(job => job.Status);
        // The scheduler's pass looks for succeeded jobs still waiting for their evaluation's verdict.
        builder.HasIndex(job => job.EvaluationRequestedAt).HasFilter("\"EvaluationVerdict\" IS NULL AND \"EvalId\" IS NOT NULL");
    }
}

internal sealed class JobEventConfiguration : IEntityTypeConfiguration<JobEvent>
{
    public void Configure(EntityTypeBuilder<JobEvent> builder)
    {
        builder.ToTable("job_events");
        builder.HasKey(jobEvent => jobEvent.Sequence);
        builder.Property(jobEvent => jobEvent.Sequence).UseIdentityAlwaysColumn();
        builder.Property(jobEvent => jobEvent.Id).HasMaxLength(64).IsRequired();
        builder.Property(jobEvent => jobEvent.JobId).HasMaxLength(64).IsRequired();
        builder.Property(jobEvent => jobEvent.Level).HasMaxLength(8).IsRequired();
        builder.Property(jobEvent => jobEvent.Type).HasMaxLength(16).IsRequired();
        builder.Property(jobEvent => jobEvent.Data).HasColumnType("jsonb").IsRequired();
        builder.HasIndex(jobEvent => new { jobEvent.JobId, jobEvent.Sequence });
        builder.HasIndex(jobEvent => jobEvent.Id).IsUnique();
        builder.HasOne<TrainingJob>().WithMany().HasForeignKey(jobEvent => jobEvent.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class JobCheckpointConfiguration : IEntityTypeConfiguration<JobCheckpoint>
{
    public void Configure(EntityTypeBuilder<JobCheckpoint> builder)
    {
        builder.ToTable("checkpoints");
        builder.HasKey(checkpoint => checkpoint.Id);
        builder.Property(checkpoint => checkpoint.Id).HasMaxLength(64);
        builder.Property(checkpoint => checkpoint.JobId).HasMaxLength(64).IsRequired();
        builder.Property(checkpoint => checkpoint.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(checkpoint => checkpoint.ModelId).HasMaxLength(300).IsRequired();
        builder.Property(checkpoint => checkpoint.Metrics).HasColumnType("jsonb").IsRequired();
        builder.Property(checkpoint => checkpoint.Sha256).HasMaxLength(64).IsRequired();
        // One checkpoint per job and step: a re-run of a step after a resume replaces nothing twice.
        builder.HasIndex(checkpoint => new { checkpoint.JobId, checkpoint.Step }).IsUnique();
        builder.HasIndex(checkpoint => checkpoint.ModelId).IsUnique();
        builder.HasOne<TrainingJob>().WithMany().HasForeignKey(checkpoint => checkpoint.JobId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class FineTunedModelConfiguration : IEntityTypeConfiguration<FineTunedModel>
{
    public void Configure(EntityTypeBuilder<FineTunedModel> builder)
    {
        builder.ToTable("models");
        builder.HasKey(model => model.Id);
        builder.Property(model => model.Id).HasMaxLength(300);
        builder.Property(model => model.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(model => model.BaseModel).HasMaxLength(300).IsRequired();
        builder.Property(model => model.JobId).HasMaxLength(64).IsRequired();
        builder.Property(model => model.CheckpointId).HasMaxLength(64).IsRequired();
        builder.Property(model => model.Status).HasMaxLength(24).IsRequired().HasDefaultValue(ModelStatus.Published);
        builder.HasIndex(model => model.ProjectId);
    }
}

internal sealed class ModelPermissionConfiguration : IEntityTypeConfiguration<ModelPermission>
{
    public void Configure(EntityTypeBuilder<ModelPermission> builder)
    {
        builder.ToTable("model_permissions");
        builder.HasKey(permission => permission.Id);
        builder.Property(permission => permission.Id).HasMaxLength(64);
        builder.Property(permission => permission.ModelId).HasMaxLength(300).IsRequired();
        builder.Property(permission => permission.OwnerProjectId).HasMaxLength(64).IsRequired();
        builder.Property(permission => permission.ProjectId).HasMaxLength(64).IsRequired();
        builder.HasIndex(permission => new { permission.ModelId, permission.ProjectId }).IsUnique();
        builder.HasIndex(permission => permission.ProjectId);
    }
}

internal sealed class ProjectQuotaConfiguration : IEntityTypeConfiguration<ProjectQuota>
{
    public void Configure(EntityTypeBuilder<ProjectQuota> builder)
    {
        builder.ToTable("project_quotas");
        builder.HasKey(quota => quota.ProjectId);
        builder.Property(quota => quota.ProjectId).HasMaxLength(64);
    }
}

internal sealed class TrainerWorkerConfiguration : IEntityTypeConfiguration<TrainerWorker>
{
    public void Configure(EntityTypeBuilder<TrainerWorker> builder)
    {
        builder.ToTable("workers");
        builder.HasKey(worker => worker.WorkerId);
        builder.Property(worker => worker.WorkerId).HasMaxLength(128);
    }
}

internal sealed class BaseModelConfiguration : IEntityTypeConfiguration<BaseModel>
{
    public void Configure(EntityTypeBuilder<BaseModel> builder)
    {
        builder.ToTable("base_models");
        builder.HasKey(model => model.Id);
        builder.Property(model => model.Id).HasMaxLength(64);
        builder.Property(model => model.Architecture).HasMaxLength(64).IsRequired();
        builder.Property(model => model.FilesSha256).HasMaxLength(64).IsRequired();
        builder.HasMany(model => model.Files).WithOne().HasForeignKey(file => file.ModelId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class BaseModelFileConfiguration : IEntityTypeConfiguration<BaseModelFile>
{
    public void Configure(EntityTypeBuilder<BaseModelFile> builder)
    {
        builder.ToTable("base_model_files");
        builder.HasKey(file => new { file.ModelId, file.Name });
        builder.Property(file => file.ModelId).HasMaxLength(64);
        builder.Property(file => file.Name).HasMaxLength(128);
        builder.Property(file => file.Sha256).HasMaxLength(64).IsRequired();
        // Deleting a model frees a blob only when no other model's file names it.
        builder.HasIndex(file => file.Sha256);
    }
}

internal sealed class StoredBlobConfiguration : IEntityTypeConfiguration<StoredBlob>
{
    public void Configure(EntityTypeBuilder<StoredBlob> builder)
    {
        builder.ToTable("stored_blobs");
        builder.HasKey(blob => blob.Sha256);
        builder.Property(blob => blob.Sha256).HasMaxLength(64);
    }
}

internal sealed class TrainingFileFitConfiguration : IEntityTypeConfiguration<TrainingFileFit>
{
    public void Configure(EntityTypeBuilder<TrainingFileFit> builder)
    {
        builder.ToTable("training_file_fits");
        builder.HasKey(fit => new { fit.FileId, fit.BaseFilesSha256, fit.TrainingLength });
        builder.Property(fit => fit.FileId).HasMaxLength(64);
        builder.Property(fit => fit.BaseFilesSha256).HasMaxLength(64);
        builder.Property(fit => fit.Message).IsRequired();
    }
}
