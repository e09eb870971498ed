using FineTunePlatform.Datasets.Files;
using FineTunePlatform.ServiceDefaults.Storage;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Datasets.Infrastructure;

public sealed class DatasetsDbContext(DbContextOptions<DatasetsDbContext> options) : DbContext(options)
{
    public DbSet<DatasetFile> Files => Set<DatasetFile>();

    public DbSet<UploadSession> UploadSessions => Set<UploadSession>();

    public DbSet<UploadPart> UploadParts => Set<UploadPart>();

    public DbSet<ContentChunk> Chunks => Set<ContentChunk>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(DatasetsDbContext).Assembly);
        modelBuilder.ApplyConfiguration(new ContentChunkConfiguration());
    }
}
