using Microsoft.Extensions.Configuration;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Reads connection strings under Aspire's names (ConnectionStrings:{name}) and stops start-up with a message
/// that names the key and shows an example when one is missing or malformed.
/// </summary>
public static class ConnectionStringExtensions
{
    public static string GetRequiredConnectionString(this IConfiguration configuration, string name, string example)
    {
        var value = configuration.GetConnectionString(name);
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new MissingConnectionStringException(
                $"Connection string 'ConnectionStrings:{name}' is missing. Set it in configuration or as the environment "
                + $"variable ConnectionStrings__{name}, for example: ConnectionStrings__{name}=\"{example}\"");
        }

        return value;
    }

    public static MissingConnectionStringException Malformed(string name, string example, string problem) =>
        new($"Connection string 'ConnectionStrings:{name}' is malformed: {problem}. Expected something like: "
            + $"ConnectionStrings__{name}=\"{example}\"");
}

/// <summary>Thrown at start-up when a required connection string is absent or cannot be parsed.</summary>
public sealed class MissingConnectionStringException(string message) : InvalidOperationException(message);
