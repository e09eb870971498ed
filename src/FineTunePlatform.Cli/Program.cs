using FineTunePlatform.Cli;

return await Ftune.InvokeAsync(args, Console.Out, Console.Error);
