using FineTunePlatform.Gateway.Auth;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.Infrastructure;

public sealed class GatewayDbContext(DbContextOptions<GatewayDbContext> options) : DbContext(options)
{
    public DbSet<Project> Projects => Set<Project>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    public DbSet<Usage.DailyUsage> DailyUsage => Set<Usage.DailyUsage>();

    public DbSet<StoredCompletions.StoredCompletion> StoredCompletions => Set<StoredCompletions.StoredCompletion>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(GatewayDbContext).Assembly);
    }
}
