using FineTunePlatform.Gateway.Auth;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTunePlatform.Gateway.Infrastructure;

internal sealed class ProjectConfiguration : IEntityTypeConfiguration<Project>
{
    public void Configure(EntityTypeBuilder<Project> builder)
    {
        builder.ToTable("projects");
        builder.HasKey(project => project.Id);
        builder.Property(project => project.Id).HasMaxLength(64);
        builder.Property(project => project.Name).HasMaxLength(256).IsRequired();
        builder.HasIndex(project => project.Name).IsUnique();
    }
}

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> builder)
    {
        builder.ToTable("api_keys");
        builder.HasKey(key => key.Id);
        builder.Property(key => key.Id).HasMaxLength(64);
        builder.Property(key => key.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(key => key.Name).HasMaxLength(256).IsRequired();
        builder.Property(key => key.Role).HasMaxLength(16).IsRequired();
        builder.Property(key => key.Hash).HasMaxLength(64).IsRequired();
        builder.Property(key => key.RedactedValue).HasMaxLength(32).IsRequired();
        builder.HasIndex(key => key.Hash).IsUnique();
        builder.HasIndex(key => key.ProjectId);
        builder.HasOne<Project>().WithMany().HasForeignKey(key => key.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class DailyUsageConfiguration : IEntityTypeConfiguration<Usage.DailyUsage>
{
    public void Configure(EntityTypeBuilder<Usage.DailyUsage> builder)
    {
        // Written by UsageRecorder with an upsert on this key.
        builder.ToTable("usage_daily");
        builder.HasKey(usage => new { usage.ProjectId, usage.KeyId, usage.Model, usage.Day });
        builder.Property(usage => usage.ProjectId).HasMaxLength(64);
        builder.Property(usage => usage.KeyId).HasMaxLength(64);
        builder.Property(usage => usage.Model).HasMaxLength(256);
    }
}

internal sealed class StoredCompletionConfiguration : IEntityTypeConfiguration<StoredCompletions.StoredCompletion>
{
    public void Configure(EntityTypeBuilder<StoredCompletions.StoredCompletion> builder)
    {
        builder.ToTable("stored_completions");
        // Ids are the gateway's own random `chatcmpl-` ids; every read also names the project.
        builder.HasKey(completion => completion.Id);
        builder.Property(completion => completion.Id).HasMaxLength(64);
        builder.Property(completion => completion.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(completion => completion.Model).HasMaxLength(256).IsRequired();
        builder.Property(completion => completion.RequestId).HasMaxLength(64).IsRequired();
        // Messages and answers are text, not jsonb: jsonb refuses the escaped NUL character, which a prompt or a
        // provider's answer can hold (as the evaluation service learnt). Metadata, which lists filter inside, is
        // jsonb; it cannot hold NUL (MetadataLimits refuses it).
        builder.Property(completion => completion.InputMessages).IsRequired();
        builder.Property(completion => completion.Completion).IsRequired();
        builder.Property(completion => completion.Metadata).HasColumnType("jsonb").IsRequired();
        builder.Property(completion => completion.Sequence).UseIdentityByDefaultColumn();
        // Lists page by (created, sequence) within a project; metadata filters use jsonb containment.
        builder.HasIndex(completion => new { completion.ProjectId, completion.Created, completion.Sequence });
        builder.HasIndex(completion => completion.Metadata).HasMethod("gin");
        builder.HasOne<Auth.Project>().WithMany().HasForeignKey(completion => completion.ProjectId).OnDelete(DeleteBehavior.Cascade);
    }
}
