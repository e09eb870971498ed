namespace FineTunePlatform.Testing;

public static class RepositoryRoot
{
    /// <summary>The checkout the tests were built from (the directory holding FineTunePlatform.sln).</summary>
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "FineTunePlatform.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"FineTunePlatform.sln not found above {AppContext.BaseDirectory}");
    }
}
