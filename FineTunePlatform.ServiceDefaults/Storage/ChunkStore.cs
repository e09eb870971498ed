using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;

namespace FineTunePlatform.ServiceDefaults.Storage;

/// <summary>
/// Content in PostgreSQL (a `content_chunks` table in the service's own database), one row per chunk, so any replica serves any file or artifact and nothing is held in memory whole:
/// writes go chunk by chunk, reads stream row by row (sequential access: one chunk in memory at a time).
/// </summary>
public sealed class ChunkStore(NpgsqlDataSource dataSource)
{
    public async Task WriteAsync(string ownerId, int index, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("INSERT INTO content_chunks (owner_id, chunk_index, data) VALUES ($1, $2, $3)");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ownerId });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = index });
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { TypedValue = data, NpgsqlDbType = NpgsqlDbType.Bytea });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async IAsyncEnumerable<byte[]> ReadAsync(string ownerId, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // One chunk per round trip keeps memory at one chunk without holding a long-running cursor open.
        for (var index = 0; ; index++)
        {
            await using var command = dataSource.CreateCommand("SELECT data FROM content_chunks WHERE owner_id = $1 AND chunk_index = $2");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ownerId });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = index });
            if (await command.ExecuteScalarAsync(cancellationToken) is not byte[] data)
            {
                yield break;
            }

            yield return data;
        }
    }

    public async Task DeleteAsync(string ownerId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM content_chunks WHERE owner_id = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ownerId });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
