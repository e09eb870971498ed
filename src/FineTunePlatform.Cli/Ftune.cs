using System.ClientModel;
using System.CommandLine;
using System.CommandLine.Invocation;
using System.Net.Sockets;
using System.Reflection;
using System.Text.Json;
using FineTunePlatform.Cli.Commands;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli;

/// <summary>
/// `ftune`: the platform from a terminal — upload and check files, start and follow fine-tuning jobs, create and run
/// evals, list models and chat with them, list stored chats and export them as a training file. It speaks the same public API as the OpenAI SDKs (through the official .NET
/// SDK where the call is OpenAI's, plain HTTP for our additions: file reports, the job event stream, a job's
/// evaluation, a model's publication). Exit codes: 0 done, 1 the platform refused or the job or run did not succeed,
/// 2 a usage or configuration mistake. Every failure is one line on stderr, never a stack trace. `--json` prints the
/// platform's objects instead of text; live views and progress bars are drawn only on a terminal.
/// </summary>
public static class Ftune
{
    public const string RunHint = "is ./run.sh running? (./run.sh status)";

    /// <summary>This build's version and commit (1.0.0+sha), what `ftune --version` prints.</summary>
    public static string Version { get; } = typeof(Ftune).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

    public static Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default) =>
        InvokeAsync(args, output, error, TerminalInfo.None, cancellationToken);

    public static async Task<int> InvokeAsync(string[] args, TextWriter output, TextWriter error, TerminalInfo terminal, CancellationToken cancellationToken = default)
    {
        var connection = new ConnectionOptions();
        var results = new CommandOutput(output, error, terminal);
        var root = new RootCommand("ftune: fine-tune, evaluate and call models on FineTunePlatform (an OpenAI-compatible API).")
        {
            connection.BaseUrl,
            connection.ApiKey,
            results.Json,
            FileCommands.Create(connection, results),
            JobCommands.Create(connection, results),
            EvalCommands.Create(connection, results),
            ModelCommands.Create(connection, results),
            ModelCommands.Chat(connection, results),
            CompletionCommands.Create(connection, results),
            AdminCommands.Create(connection, results),
            TabCompletionCommand.Create(results),
        };
        // System.CommandLine's --version names the entry assembly, which is the test host when a test calls us.
        root.Options.OfType<VersionOption>().Single().Action = new PrintVersion(output);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // A usage mistake (bare `ftune` included: a command is required): what was wrong, then the usage of the
            // command that was meant, on stderr, exit 2.
            foreach (var parseError in parse.Errors)
            {
                await error.WriteLineAsync($"ftune: {parseError.Message}");
            }

            await root.Parse([.. CommandPath(parse), "--help"]).InvokeAsync(new InvocationConfiguration { Output = error, Error = error }, cancellationToken);
            return 2;
        }

        try
        {
            var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
            return await parse.InvokeAsync(configuration, cancellationToken);
        }
        catch (Exception ex)
        {
            var (message, exitCode) = Describe(ex, connection.Opened);
            await error.WriteLineAsync($"ftune: {message}");
            return exitCode;
        }
    }

    /// <summary>One line and an exit code for whatever a command threw.</summary>
    private static (string Message, int ExitCode) Describe(Exception ex, PlatformConnection? platform)
    {
        // The SDK's retry policy throws an AggregateException of each attempt's failure; the last says it all.
        while (ex is AggregateException { InnerExceptions.Count: > 0 } aggregate)
        {
            ex = aggregate.InnerExceptions[^1];
        }

        var where = platform?.Root.ToString().TrimEnd('/') ?? "the configured URL";
        switch (ex)
        {
            case CliException cli:
                return (cli.Message, cli.ExitCode);
            case ClientResultException { Status: 0 } transport:
                return ($"cannot reach the platform at {where}: {Innermost(transport).Message}; {RunHint}", 1);
            case ClientResultException result when platform is not null:
                return (platform.ErrorOf(result.Status, result.GetRawResponse()?.Content.ToString() ?? result.Message).Message, 1);
            case ClientResultException result:
                return ($"{result.Status}: {result.Message}", 1);
            case FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException:
                return (ex.Message, 2);
            case HttpRequestException or SocketException or IOException:
                return ($"cannot reach the platform at {where}: {Innermost(ex).Message}; {RunHint}", 1);
            case OperationCanceledException:
                return ($"the platform at {where} did not answer in time; {RunHint}", 1);
            case JsonException json:
                return ($"the platform at {where} answered with JSON ftune does not understand ({json.Message.Split('.')[0]}); is --base-url the platform's API root (…/v1)?", 1);
            default:
                return ($"unexpected {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}", 1);
        }
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
        {
            ex = ex.InnerException;
        }

        return ex;
    }

    private static string[] CommandPath(ParseResult parse)
    {
        var path = new List<string>();
        for (var result = parse.CommandResult; result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
        {
            path.Insert(0, result.Command.Name);
        }

        return [.. path];
    }
}

internal sealed class PrintVersion(TextWriter output) : SynchronousCommandLineAction
{
    public override int Invoke(ParseResult parseResult)
    {
        output.WriteLine(Ftune.Version);
        return 0;
    }
}

/// <summary>A failure to report as one line and an exit code, not a stack trace.</summary>
public sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
