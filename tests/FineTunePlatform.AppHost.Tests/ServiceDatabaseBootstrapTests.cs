using Npgsql;

namespace FineTunePlatform.AppHost.Tests;

/// <summary>
/// The AppHost's bootstrap of the services' databases and roles (<see cref="ServiceDatabaseBootstrap"/>) on a cluster
/// that existed before roles did: databases, tables, sequences and functions made by the superuser, as every service
/// migrated until then. Against the suite's PostgreSQL, with database and role names of this test's own (the
/// bootstrap also revokes CONNECT on `postgres` from PUBLIC there, which the suite's superuser connections ignore).
/// </summary>
public sealed class ServiceDatabaseBootstrapTests
{
    [Fact]
    public async Task A_database_the_superuser_made_and_migrated_is_handed_over_to_its_role_which_reaches_nothing_else()
    {
        var prefix = $"bootstrap_{Guid.NewGuid():N}"[..22];
        var own = new ServiceDatabase($"{prefix}_own", $"{prefix}_owner");
        var other = new ServiceDatabase($"{prefix}_other", $"{prefix}_other_owner");
        var superuser = FineTunePlatform.Testing.PlatformServers.PostgresServer;
        await ExecuteAsync(superuser, $"CREATE DATABASE {own.Name}");
        try
        {
            await ExecuteAsync(Database(superuser, own.Name),
                "CREATE TABLE jobs (id serial PRIMARY KEY, name text)",
                "CREATE TABLE \"__EFMigrationsHistory\" (\"MigrationId\" text PRIMARY KEY)",
                "CREATE SEQUENCE tickets",
                "CREATE VIEW named_jobs AS SELECT id, name FROM jobs",
                "CREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql");

            await ServiceDatabaseBootstrap.ApplyAsync(superuser, [(own, "first-password"), (other, "other-password")], CancellationToken.None);

            var asRole = new NpgsqlConnectionStringBuilder(Database(superuser, own.Name)) { Username = own.Role, Password = "first-password", Pooling = false }.ConnectionString;
            Assert.Equal(0L, await ScalarAsync<long>(asRole,
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relowner <> current_user::regrole)"
                + " + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proowner <> current_user::regrole)"));
            // What its next migration would do to what the superuser made.
            await ExecuteAsync(asRole, "ALTER TABLE jobs ADD COLUMN status text", "DROP VIEW named_jobs", "SELECT nextval('tickets')");
            Assert.False(await ScalarAsync<bool>(asRole, "SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = current_user"));

            foreach (var elsewhere in new[] { other.Name, "postgres" })
            {
                var refused = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<int>(
                    new NpgsqlConnectionStringBuilder(asRole) { Database = elsewhere }.ConnectionString, "SELECT 1"));
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
            }

            // Applied again with a new password (every AppHost start applies it): the new one is the one that works.
            await ServiceDatabaseBootstrap.ApplyAsync(superuser, [(own, "second-password"), (other, "other-password")], CancellationToken.None);
            var wrong = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<int>(asRole, "SELECT 1"));
            Assert.Equal(PostgresErrorCodes.InvalidPassword, wrong.SqlState);
            Assert.Equal(1, await ScalarAsync<int>(new NpgsqlConnectionStringBuilder(asRole) { Password = "second-password" }.ConnectionString, "SELECT 1"));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            foreach (var database in new[] { own, other })
            {
                await ExecuteAsync(superuser, $"DROP DATABASE IF EXISTS {database.Name} WITH (FORCE)", $"DROP ROLE IF EXISTS {database.Role}");
            }
        }
    }

    private static string Database(string server, string name) => new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;

    private static async Task ExecuteAsync(string connectionString, params string[] statements)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        foreach (var sql in statements)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }
    }

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
