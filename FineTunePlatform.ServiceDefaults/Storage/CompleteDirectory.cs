namespace FineTunePlatform.ServiceDefaults.Storage;

/// <summary>
/// A directory that appears whole or not at all: it is written under a temporary sibling name (starting with '.')
/// and renamed into place, so a crash midway never leaves a directory that looks usable, and two processes writing
/// the same one at once both end with it complete (the one that renames second keeps the first's, which is the same).
/// </summary>
public static class CompleteDirectory
{
    public static async Task CreateAsync(string directory, Func<string, Task> write)
    {
        var parent = Path.GetDirectoryName(directory)!;
        Directory.CreateDirectory(parent);
        var partial = Path.Combine(parent, $".{Path.GetFileName(directory)}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(partial);
        try
        {
            await write(partial);
            try
            {
                Directory.Move(partial, directory);
            }
            catch (IOException) when (Directory.Exists(directory))
            {
                // Another process finished the same directory first: theirs is identical.
                Directory.Delete(partial, recursive: true);
            }
        }
        catch
        {
            if (Directory.Exists(partial))
            {
                Directory.Delete(partial, recursive: true);
            }

            throw;
        }
    }
}
