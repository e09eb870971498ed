using System.ClientModel;
using System.CommandLine;
using FineTunePlatform.Cli.Commands;

namespace FineTunePlatform.Cli;

/// <summary>
/// `ftune`: the platform from a terminal — upload and check training files, start and follow fine-tuning jobs, list
/// models and chat with them. It speaks the same public API as the OpenAI SDKs (through the official .NET SDK where
/// the call is OpenAI's, plain HTTP for our additions: file reports, the job event stream, a job's evaluation).
/// Exit codes: 0 done, 1 the platform refused or the job did not succeed, 2 a usage or configuration mistake.
/// </summary>
public static class Ftune
{
    public static async Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var connection = new ConnectionOptions();
        var root = new RootCommand("ftune: fine-tune, evaluate and call models on FineTunePlatform (an OpenAI-compatible API).")
        {
            connection.BaseUrl,
            connection.ApiKey,
            FileCommands.Create(connection, output),
            JobCommands.Create(connection, output),
            ModelCommands.Create(connection, output),
            ModelCommands.Chat(connection, output),
        };
        try
        {
            var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
            return await root.Parse(args).InvokeAsync(configuration, cancellationToken);
        }
        catch (CliException ex)
        {
            await error.WriteLineAsync($"ftune: {ex.Message}");
            return ex.ExitCode;
        }
        catch (ClientResultException ex)
        {
            await error.WriteLineAsync($"ftune: {PlatformConnection.ErrorOf(ex.Status, ex.GetRawResponse()?.Content.ToString() ?? ex.Message).Message}");
            return 1;
        }
        catch (HttpRequestException ex)
        {
            await error.WriteLineAsync($"ftune: could not reach the platform: {ex.Message}");
            return 1;
        }
    }
}

/// <summary>A failure to report as one line and an exit code, not a stack trace.</summary>
public sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
