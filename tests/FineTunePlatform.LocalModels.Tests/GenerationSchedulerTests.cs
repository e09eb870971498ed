namespace FineTunePlatform.LocalModels.Tests;

public sealed class GenerationSchedulerTests
{
    private static readonly TransformerModel Model = TransformerModel.Create(ModelPresets.Nano, seed: 21);

    [Fact]
    public async Task Concurrent_requests_batched_together_get_the_replies_they_would_get_alone()
    {
        // Different prompt lengths, budgets, temperatures and stop sequences, so requests join and leave the batches
        // at different steps; more requests than the batch holds, so some wait for a place.
        var requests = Enumerable.Range(0, 24).Select(i => (
            Prompt: (IReadOnlyList<ChatTurn>)[new ChatTurn("system", new string('s', i % 5)), new ChatTurn("user", $"ticket {i}: " + new string('x', 3 * i))],
            Options: new SamplingOptions(Temperature: i % 4 == 0 ? 0 : 0.8, TopP: i % 3 == 0 ? 0.9 : 1, MaxTokens: 5 + (7 * i % 40), Seed: i),
            Stop: i % 2 == 0 ? (IReadOnlyList<string>)["e"] : null)).ToList();
        var alone = requests.Select(request => Generator.Complete(Model, request.Prompt, request.Options, request.Stop)).ToList();

        var scheduler = new GenerationScheduler(maxBatch: 6);
        var batched = await Task.WhenAll(requests.Select(request => Task.Run(() => scheduler.CompleteAsync(Model, request.Prompt, request.Options, request.Stop))));

        Assert.Equal(alone, batched);
        Assert.Contains(batched, result => result.FinishReason == "stop");
        Assert.Contains(batched, result => result.FinishReason == "length");
    }

    [Fact]
    public async Task Streaming_yields_the_reply_piece_by_piece_and_the_result_last()
    {
        var scheduler = new GenerationScheduler();
        ChatTurn[] prompt = [new("user", "where is my parcel?")];
        var options = new SamplingOptions(Temperature: 1, MaxTokens: 24, Seed: 3);

        var pieces = new List<(string Delta, GenerationResult? Result)>();
        await foreach (var piece in scheduler.StreamAsync(Model, prompt, options))
        {
            pieces.Add(piece);
        }

        var expected = Generator.Complete(Model, prompt, options);
        Assert.True(pieces.Count > 1, "a reply of several tokens arrives in several pieces");
        Assert.All(pieces[..^1], piece => Assert.Null(piece.Result));
        Assert.Equal(expected, pieces[^1].Result);
        Assert.Equal(expected.Text, string.Concat(pieces.Select(piece => piece.Delta)));
    }

    [Fact]
    public async Task A_cancelled_request_leaves_its_batch_and_the_others_finish()
    {
        var scheduler = new GenerationScheduler(maxBatch: 4);
        ChatTurn[] prompt = [new("user", "hello")];
        using var cancellation = new CancellationTokenSource();
        var cancelled = Task.Run(async () =>
        {
            var pieces = 0;
            await foreach (var _ in scheduler.StreamAsync(Model, prompt, new SamplingOptions(Temperature: 1, MaxTokens: 100_000, Seed: 1), cancellationToken: cancellation.Token))
            {
                if (++pieces == 3)
                {
                    await cancellation.CancelAsync();
                }
            }
        });
        var others = Enumerable.Range(0, 6).Select(i => scheduler.CompleteAsync(Model, prompt, new SamplingOptions(Temperature: 1, MaxTokens: 30, Seed: 10 + i))).ToList();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        var finished = await Task.WhenAll(others);
        Assert.All(finished, result => Assert.True(result.CompletionTokens > 0));
    }
}
