using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Runs;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using static FineTunePlatform.Evaluation.Infrastructure.Columns;

namespace FineTunePlatform.Evaluation.Infrastructure;

/// <summary>
/// JSON documents are stored as text, not jsonb: jsonb refuses the escaped NUL character (\u0000), which model
/// output and users' items may contain, and nothing queries inside these documents.
/// </summary>
internal static class Columns
{
    public const string JsonText = "text";
}

internal sealed class EvalConfiguration : IEntityTypeConfiguration<Eval>
{
    public void Configure(EntityTypeBuilder<Eval> builder)
    {
        builder.ToTable("evals");
        builder.HasKey(eval => eval.Id);
        builder.Property(eval => eval.Id).HasMaxLength(64);
        builder.Property(eval => eval.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(eval => eval.Name).HasMaxLength(256).IsRequired();
        builder.Property(eval => eval.DataSourceConfig).HasColumnType(JsonText).IsRequired();
        builder.Property(eval => eval.ItemSchema).HasColumnType(JsonText).IsRequired();
        builder.Property(eval => eval.TestingCriteria).HasColumnType(JsonText).IsRequired();
        builder.Property(eval => eval.Metadata).HasColumnType(JsonText).IsRequired();
        builder.HasIndex(eval => new { eval.ProjectId, eval.CreatedAt });
    }
}

internal sealed class EvalRunConfiguration : IEntityTypeConfiguration<EvalRun>
{
    public void Configure(EntityTypeBuilder<EvalRun> builder)
    {
        builder.ToTable("eval_runs");
        builder.HasKey(run => run.Id);
        builder.Property(run => run.Id).HasMaxLength(64);
        builder.Property(run => run.EvalId).HasMaxLength(64).IsRequired();
        builder.Property(run => run.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(run => run.KeyId).HasMaxLength(64);
        builder.Property(run => run.Name).HasMaxLength(256).IsRequired();
        builder.Property(run => run.Status).HasMaxLength(16).IsRequired();
        builder.Property(run => run.Model).HasMaxLength(256);
        builder.Property(run => run.DataSource).HasColumnType(JsonText).IsRequired();
        builder.Property(run => run.Metadata).HasColumnType(JsonText).IsRequired();
        builder.Property(run => run.ErrorCode).HasMaxLength(64);
        builder.Property(run => run.PerModelUsage).HasColumnType(JsonText).IsRequired();
        builder.Property(run => run.PerCriterion).HasColumnType(JsonText).IsRequired();
        builder.Property(run => run.LeaseOwner).HasMaxLength(128);
        builder.Ignore(run => run.IsFinished);
        builder.HasIndex(run => new { run.EvalId, run.CreatedAt });
        // Executors look for queued runs and for runs whose lease ran out.
        builder.HasIndex(run => new { run.Status, run.LeaseUntil });
        builder.HasOne<Eval>().WithMany().HasForeignKey(run => run.EvalId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class EvalOutputItemConfiguration : IEntityTypeConfiguration<EvalOutputItem>
{
    public void Configure(EntityTypeBuilder<EvalOutputItem> builder)
    {
        builder.ToTable("eval_output_items");
        builder.HasKey(item => item.Id);
        builder.Property(item => item.Id).HasMaxLength(64);
        builder.Property(item => item.RunId).HasMaxLength(64).IsRequired();
        builder.Property(item => item.EvalId).HasMaxLength(64).IsRequired();
        builder.Property(item => item.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(item => item.Item).HasColumnType(JsonText).IsRequired();
        builder.Property(item => item.Sample).HasColumnType(JsonText);
        builder.Property(item => item.Results).HasColumnType(JsonText).IsRequired();
        builder.Property(item => item.Status).HasMaxLength(8).IsRequired();
        // One output item per data-source item and run: a resumed run cannot grade an item twice.
        builder.HasIndex(item => new { item.RunId, item.DatasourceItemId }).IsUnique();
        builder.HasOne<EvalRun>().WithMany().HasForeignKey(item => item.RunId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class JobEvaluationConfiguration : IEntityTypeConfiguration<JobEvaluations.JobEvaluation>
{
    public void Configure(EntityTypeBuilder<JobEvaluations.JobEvaluation> builder)
    {
        builder.ToTable("job_evaluations");
        builder.HasKey(evaluation => evaluation.JobId);
        builder.Property(evaluation => evaluation.JobId).HasMaxLength(64);
        builder.Property(evaluation => evaluation.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(evaluation => evaluation.EvalId).HasMaxLength(64).IsRequired();
        builder.Property(evaluation => evaluation.BaseModel).HasMaxLength(300).IsRequired();
        builder.Property(evaluation => evaluation.TunedModel).HasMaxLength(300).IsRequired();
        builder.Property(evaluation => evaluation.BaseRunId).HasMaxLength(64);
        builder.Property(evaluation => evaluation.TunedRunId).HasMaxLength(64);
        builder.Property(evaluation => evaluation.Verdict).HasMaxLength(16);
        // The monitor's poll reads only the evaluations not yet settled and published.
        builder.HasIndex(evaluation => evaluation.PublishedAt).HasFilter("\"PublishedAt\" IS NULL");
    }
}
