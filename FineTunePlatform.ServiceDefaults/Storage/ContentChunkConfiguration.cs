using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTunePlatform.ServiceDefaults.Storage;

/// <summary>The `content_chunks` table ChunkStore reads and writes; a service that stores content applies it.</summary>
public sealed class ContentChunkConfiguration : IEntityTypeConfiguration<ContentChunk>
{
    public void Configure(EntityTypeBuilder<ContentChunk> builder)
    {
        // Written and read with plain Npgsql commands (ChunkStore), so the names are spelled out.
        builder.ToTable("content_chunks");
        builder.HasKey(chunk => new { chunk.OwnerId, chunk.Index });
        builder.Property(chunk => chunk.OwnerId).HasColumnName("owner_id").HasMaxLength(64);
        builder.Property(chunk => chunk.Index).HasColumnName("chunk_index");
        builder.Property(chunk => chunk.Data).HasColumnName("data").IsRequired();
    }
}
