using FineTunePlatform.Datasets.Files;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTunePlatform.Datasets.Infrastructure;

internal sealed class DatasetFileConfiguration : IEntityTypeConfiguration<DatasetFile>
{
    public void Configure(EntityTypeBuilder<DatasetFile> builder)
    {
        builder.ToTable("files");
        builder.HasKey(file => file.Id);
        builder.Property(file => file.Id).HasMaxLength(64);
        builder.Property(file => file.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(file => file.Filename).HasMaxLength(FileNames.MaxLength).IsRequired();
        builder.Property(file => file.Purpose).HasMaxLength(32).IsRequired();
        builder.Property(file => file.Status).HasMaxLength(16).IsRequired();
        builder.Property(file => file.Sha256).HasMaxLength(64);
        builder.Property(file => file.Format).HasMaxLength(16);
        builder.Property(file => file.BaseModel).HasMaxLength(256);
        // Text, not jsonb: the report quotes the user's data, and jsonb refuses the escaped NUL character (\u0000).
        builder.Property(file => file.Report).HasColumnType("text");
        // Listing is by project, newest first, paged by id.
        builder.HasIndex(file => new { file.ProjectId, file.CreatedAt, file.Id });
    }
}

internal sealed class UploadSessionConfiguration : IEntityTypeConfiguration<UploadSession>
{
    public void Configure(EntityTypeBuilder<UploadSession> builder)
    {
        builder.ToTable("upload_sessions");
        builder.HasKey(upload => upload.Id);
        builder.Property(upload => upload.Id).HasMaxLength(64);
        builder.Property(upload => upload.ProjectId).HasMaxLength(64).IsRequired();
        builder.Property(upload => upload.Filename).HasMaxLength(FileNames.MaxLength).IsRequired();
        builder.Property(upload => upload.Purpose).HasMaxLength(32).IsRequired();
        builder.Property(upload => upload.Status).HasMaxLength(16).IsRequired();
        builder.Property(upload => upload.MimeType).HasMaxLength(128);
        builder.Property(upload => upload.FileId).HasMaxLength(64);
        builder.HasIndex(upload => upload.ProjectId);
    }
}

internal sealed class UploadPartConfiguration : IEntityTypeConfiguration<UploadPart>
{
    public void Configure(EntityTypeBuilder<UploadPart> builder)
    {
        builder.ToTable("upload_parts");
        builder.HasKey(part => part.Id);
        builder.Property(part => part.Id).HasMaxLength(64);
        builder.Property(part => part.UploadId).HasMaxLength(64).IsRequired();
        builder.HasIndex(part => part.UploadId);
        builder.HasOne<UploadSession>().WithMany().HasForeignKey(part => part.UploadId).OnDelete(DeleteBehavior.Cascade);
    }
}
