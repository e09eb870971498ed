using System.Diagnostics;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>
/// Runs the PyTorch reference (reference/llama_reference.py). Debian's python3-torch installs into /usr/bin/python3's
/// packages, which a python3 earlier on PATH (pyenv, a venv) does not see, so the interpreter is FTP_PYTHON if set,
/// else the first of /usr/bin/python3 and python3 that imports torch. A machine without one fails the tests with a
/// message saying what to install: CI has it, so a broken install must be noticed, not skipped.
/// </summary>
internal static class PythonReference
{
    private static readonly Lazy<string> Interpreter = new(FindInterpreter);

    public static string ScriptDirectory => Path.Combine(AppContext.BaseDirectory, "reference");

    /// <summary>Runs llama_reference.py with the arguments; returns its standard output.</summary>
    public static string Run(params string[] arguments) => RunScript("llama_reference.py", arguments);

    public static string RunScript(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo(Interpreter.Value)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(ScriptDirectory, script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["OMP_NUM_THREADS"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The PyTorch reference did not finish in 5 minutes: {string.Join(' ', arguments)}");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"The PyTorch reference failed ({process.ExitCode}) for '{string.Join(' ', arguments)}':\n{error.Result}");
        }

        return output.Result;
    }

    private static string FindInterpreter()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("FTP_PYTHON") is { Length: > 0 } configured)
        {
            candidates.Add(configured);
        }

        candidates.Add("/usr/bin/python3");
        candidates.Add("python3");
        var tried = new List<string>();
        foreach (var candidate in candidates)
        {
            try
            {
                var start = new ProcessStartInfo(candidate, ["-c", "import torch, numpy, jinja2; print(torch.__version__)"])
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                };
                using var process = Process.Start(start)!;
                var version = process.StandardOutput.ReadToEnd().Trim();
                var error = process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode == 0)
                {
                    return candidate;
                }

                tried.Add($"{candidate}: {error.Trim().Split('\n').LastOrDefault()}");
            }
            catch (System.ComponentModel.Win32Exception exception)
            {
                tried.Add($"{candidate}: {exception.Message}");
            }
        }

        throw new InvalidOperationException(
            "The reference checks need python3 with torch, numpy and jinja2: on Debian run `apt-get install -y python3-torch python3-jinja2` " +
            "(or point FTP_PYTHON at an interpreter that has them). Tried: " + string.Join("; ", tried));
    }
}

/// <summary>Per-tensor comparison: max |ours − reference| ≤ tolerance · max |reference| (+ a floor for all-zero tensors).</summary>
internal static class Compare
{
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double relative, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0, worst = 0;
        var worstIndex = -1;
        for (var i = 0; i < expected.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(expected[i]));
            var difference = Math.Abs(expected[i] - (double)actual[i]);
            if (!(difference <= worst))
            {
                worst = difference;
                worstIndex = i;
            }
        }

        var allowed = (relative * scale) + 1e-9;
        Assert.True(worst <= allowed, $"{what}: max |difference| {worst:E3} at [{worstIndex}] (expected {(worstIndex >= 0 ? expected[worstIndex] : 0)}, got {(worstIndex >= 0 ? actual[worstIndex] : 0)}) exceeds {relative:E0} × max |reference| {scale:E3}.");
    }
}
