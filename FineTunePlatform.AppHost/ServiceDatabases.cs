using Npgsql;

namespace FineTunePlatform.AppHost;

/// <summary>One service's database and the login role that owns it (and nothing else).</summary>
internal sealed record ServiceDatabase(string Name, string Role)
{
    /// <summary>Every database of the platform, with the service that owns it.</summary>
    public static readonly IReadOnlyList<ServiceDatabase> All =
    [
        new("datasetsdb", "datasets"),
        new("trainingdb", "training"),
        new("evaluationdb", "evaluation"),
        new("gatewaydb", "gateway"),
    ];

    /// <summary>The AppHost parameter holding the role's password (generated once per platform, like its other secrets).</summary>
    public string PasswordParameter => $"postgres-{Role}-password";
}

/// <summary>
/// The one place the platform's databases and roles are made, run as the PostgreSQL superuser before any service
/// starts (the server's readiness check runs it, so WaitFor on the server means "bootstrapped"): per service, a login
/// role with no superuser, CREATEDB, CREATEROLE or replication right, owning its database and every object in it, and
/// CONNECT and TEMPORARY revoked from PUBLIC on every service database (and on `postgres`), so one service's role
/// cannot even open another's database. Services only migrate, as their own role. Idempotent and applied at every
/// AppHost start: a changed password takes effect, and a cluster made before roles existed (databases and tables
/// owned by the superuser) is handed over to the roles.
/// </summary>
internal static class ServiceDatabaseBootstrap
{
    // Bootstraps of one cluster take turns (the lock is held by the session on the `postgres` database).
    private const string LockSql = "SELECT pg_advisory_lock(hashtext('finetuneplatform:bootstrap'))";

    public static async Task ApplyAsync(
        string superuserConnectionString, IEnumerable<(ServiceDatabase Database, string Password)> databases, CancellationToken cancellationToken)
    {
        var server = new NpgsqlConnectionStringBuilder(superuserConnectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, LockSql, cancellationToken);
        await ExecuteAsync(connection, "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC", cancellationToken);
        foreach (var (database, password) in databases)
        {
            await EnsureRoleAsync(connection, database.Role, password, cancellationToken);
            await EnsureDatabaseAsync(connection, database, cancellationToken);
            await using var inDatabase = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = database.Name }.ConnectionString);
            await inDatabase.OpenAsync(cancellationToken);
            await HandOverObjectsAsync(inDatabase, database.Role, cancellationToken);
        }
    }

    private static async Task EnsureRoleAsync(NpgsqlConnection connection, string role, string password, CancellationToken cancellationToken)
    {
        var exists = await ScalarAsync(connection, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role, cancellationToken) is true;
        // CREATE/ALTER ROLE take no parameters: the name is quoted as an identifier, the password as a literal.
        var attributes = $"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {Literal(password)}";
        await ExecuteAsync(connection, $"{(exists ? "ALTER" : "CREATE")} ROLE {Identifier(role)} {attributes}", cancellationToken);
    }

    private static async Task EnsureDatabaseAsync(NpgsqlConnection connection, ServiceDatabase database, CancellationToken cancellationToken)
    {
        var name = Identifier(database.Name);
        var role = Identifier(database.Role);
        if (await ScalarAsync(connection, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database.Name, cancellationToken) is not true)
        {
            await ExecuteAsync(connection, $"CREATE DATABASE {name} OWNER {role}", cancellationToken);
        }

        await ExecuteAsync(connection, $"ALTER DATABASE {name} OWNER TO {role}", cancellationToken);
        await ExecuteAsync(connection, $"REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC", cancellationToken);
    }

    /// <summary>
    /// Tables, views, sequences, functions and schemas still owned by someone else (the superuser, on a cluster whose
    /// services migrated as it) become the role's; its migrations alter them. Tables first: a sequence owned by a
    /// table's column follows its table and cannot be altered alone.
    /// </summary>
    private static async Task HandOverObjectsAsync(NpgsqlConnection connection, string role, CancellationToken cancellationToken)
    {
        var sql = $$"""
            DO $handover$
            DECLARE item record;
            BEGIN
              FOR item IN SELECT n.nspname FROM pg_namespace n
                WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
                  AND n.nspowner <> {{Literal(role)}}::regrole
              LOOP EXECUTE format('ALTER SCHEMA %I OWNER TO %I', item.nspname, {{Literal(role)}}); END LOOP;
              FOR item IN SELECT c.oid::regclass AS name,
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                  AND c.relowner <> {{Literal(role)}}::regrole
              LOOP EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.name, {{Literal(role)}}); END LOOP;
              FOR item IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                  AND c.relowner <> {{Literal(role)}}::regrole
              LOOP EXECUTE format('ALTER SEQUENCE %s OWNER TO %I', item.name, {{Literal(role)}}); END LOOP;
              FOR item IN SELECT p.oid::regprocedure AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
                  AND p.proowner <> {{Literal(role)}}::regrole
              LOOP EXECUTE format('ALTER ROUTINE %s OWNER TO %I', item.name, {{Literal(role)}}); END LOOP;
            END
            $handover$
            """;
        await ExecuteAsync(connection, sql, cancellationToken);
    }

    private static string Identifier(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static string Literal(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql, string parameter, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection) { Parameters = { new() { Value = parameter } } };
        return await command.ExecuteScalarAsync(cancellationToken);
    }
}
