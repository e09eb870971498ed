using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Datasets.Infrastructure;

public sealed class DatasetsDbContext(DbContextOptions<DatasetsDbContext> options) : DbContext(options)
{
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(DatasetsDbContext).Assembly);
    }
}
