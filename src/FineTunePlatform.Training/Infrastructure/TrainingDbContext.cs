using FineTunePlatform.ServiceDefaults.Messaging;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.Infrastructure;

public sealed class TrainingDbContext(DbContextOptions<TrainingDbContext> options) : DbContext(options)
{
    public DbSet<TrainingJob> Jobs => Set<TrainingJob>();

    public DbSet<JobEvent> Events => Set<JobEvent>();

    public DbSet<JobCheckpoint> Checkpoints => Set<JobCheckpoint>();

    public DbSet<FineTunedModel> Models => Set<FineTunedModel>();

    public DbSet<ModelPermission> Permissions => Set<ModelPermission>();

    public DbSet<ProjectQuota> Quotas => Set<ProjectQuota>();

    public DbSet<TrainerWorker> Workers => Set<TrainerWorker>();

    public DbSet<BaseModel> BaseModels => Set<BaseModel>();

    public DbSet<BaseModelFile> BaseModelFiles => Set<BaseModelFile>();

    public DbSet<StoredBlob> Blobs => Set<StoredBlob>();

    public DbSet<TrainingFileFit> FileFits => Set<TrainingFileFit>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(TrainingDbContext).Assembly);
        modelBuilder.ApplyConfiguration(new ContentChunkConfiguration());
        modelBuilder.ApplyConfiguration(new OutboxMessageConfiguration());
    }
}
