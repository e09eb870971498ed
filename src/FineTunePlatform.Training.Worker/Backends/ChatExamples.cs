using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>A training or validation file's examples for a backend; a line that does not map fails the job naming the file and the line.</summary>
public static class ChatExamples
{
    public static Task<List<SupervisedExample>> ReadAsync(Stream content, string param, CancellationToken cancellationToken) =>
        CollectAsync(ChatExampleReader.ReadChatAsync(content, cancellationToken), param);

    public static Task<List<PreferenceExample>> ReadPreferencesAsync(Stream content, string param, CancellationToken cancellationToken) =>
        CollectAsync(ChatExampleReader.ReadPreferencesAsync(content, cancellationToken), param);

    /// <summary>The examples one at a time, for a backend that encodes them as they come.</summary>
    public static async IAsyncEnumerable<(long Line, T Example)> ReadLinesAsync<T>(IAsyncEnumerable<(long Line, T Example)> lines, string param)
    {
        await using var enumerator = lines.GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await enumerator.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (InvalidExampleException ex)
            {
                throw new TrainingFailedException($"invalid_{param}", $"{ex.Message} (in the {param.Replace('_', ' ')})", param);
            }

            yield return enumerator.Current;
        }
    }

    private static async Task<List<T>> CollectAsync<T>(IAsyncEnumerable<(long Line, T Example)> lines, string param)
    {
        var examples = new List<T>();
        await foreach (var (_, example) in ReadLinesAsync(lines, param))
        {
            examples.Add(example);
        }

        return examples;
    }
}
