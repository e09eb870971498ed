using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Runs;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Evaluation.Infrastructure;

public sealed class EvaluationDbContext(DbContextOptions<EvaluationDbContext> options) : DbContext(options)
{
    public DbSet<Eval> Evals => Set<Eval>();

    public DbSet<EvalRun> Runs => Set<EvalRun>();

    public DbSet<EvalOutputItem> OutputItems => Set<EvalOutputItem>();

    public DbSet<JobEvaluations.JobEvaluation> JobEvaluations => Set<JobEvaluations.JobEvaluation>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(EvaluationDbContext).Assembly);
    }
}
