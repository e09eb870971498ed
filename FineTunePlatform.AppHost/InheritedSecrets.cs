using System.Collections;

namespace FineTunePlatform.AppHost;

/// <summary>
/// DCP starts every resource with the AppHost's own environment plus what the model gives it, so whatever secrets the
/// AppHost received through its environment would reach every service and trainer worker: the Parameters__* that
/// ./run.sh hands it (the PostgreSQL superuser's password, every role's and broker user's, the admin key), and any
/// ConnectionStrings__* of the caller's shell (the suite's own servers under ./test.sh). Once the configuration has
/// read them, they are taken out of the process's environment; each resource then gets only what the model gives it.
/// </summary>
internal static class InheritedSecrets
{
    private static readonly string[] Prefixes = ["Parameters__", "ConnectionStrings__"];

    public static void Forget()
    {
        foreach (var name in Environment.GetEnvironmentVariables().Keys.Cast<string>().ToList())
        {
            if (Prefixes.Any(prefix => name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)))
            {
                Environment.SetEnvironmentVariable(name, null);
            }
        }
    }
}
