using FineTunePlatform.Cli;
using FineTunePlatform.Cli.Output;

return await Ftune.InvokeAsync(args, Console.Out, Console.Error, TerminalInfo.OfConsole());
