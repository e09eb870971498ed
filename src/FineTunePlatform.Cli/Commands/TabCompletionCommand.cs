using System.CommandLine;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune tab-completion bash`: a completion function for bash that asks ftune itself what may come next, through
/// System.CommandLine's `[suggest:POSITION]` directive, so that completions always match this build's commands and
/// options (no dotnet-suggest needed). Not `completions`: that is the stored chat completions.
/// </summary>
public static class TabCompletionCommand
{
    public const string BashScript = """
        # ftune's tab completion for bash. Enable it with: eval "$(ftune tab-completion bash)" (e.g. in ~/.bashrc).
        _ftune_complete() {
          local IFS=$'\n' suggestions
          # Without the help option's DOS spellings (/?, /h, -?): one way to ask for help is enough on a TAB list.
          suggestions=$("${COMP_WORDS[0]}" "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null | grep -v -e '^/' -e '^-?$') || return 0
          COMPREPLY=($(compgen -W "$suggestions" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _ftune_complete ftune

        """;

    public static Command Create(CommandOutput output)
    {
        var shell = new Argument<string>("shell") { Description = "The shell: bash." };
        shell.AcceptOnlyFromAmong("bash");
        var command = new Command("tab-completion", "Print the script that makes TAB complete ftune's commands and options: eval \"$(ftune tab-completion bash)\".") { shell };
        command.SetAction(async _ =>
        {
            await output.Text.WriteAsync(BashScript);
            return 0;
        });
        return command;
    }
}
