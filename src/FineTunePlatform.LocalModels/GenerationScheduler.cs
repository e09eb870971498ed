using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Serves concurrent generations with continuous batching: the requests for one model are decoded together, one
/// token each per step, so every weight matrix is read once per step for the whole batch. A request joins the batch
/// at the next step (its prompt is decoded in that step) and leaves when its reply ends, so short replies never wait
/// for long ones. At most <c>maxBatch</c> requests per model run at once, spread over one lane per core; the rest wait
/// their turn in arrival order, and at most one step per core runs at a time across models, so the machine is shared
/// instead of oversubscribed.
/// A request's output depends only on its own seed, not on what it was batched with.
/// </summary>
public sealed class GenerationScheduler(int maxBatch = 16)
{
    private readonly ConditionalWeakTable<TransformerModel, ModelBatch> _batches = [];
    private readonly SemaphoreSlim _steps = new(Environment.ProcessorCount);

    public async IAsyncEnumerable<(string Delta, GenerationResult? Result)> StreamAsync(TransformerModel model, IReadOnlyList<ChatTurn> messages,
        SamplingOptions options, IReadOnlyList<string>? stop = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new Request(new Reply(model.Preset, messages, options, stop), cancellationToken);
        _batches.GetValue(model, key => new ModelBatch(key, Math.Max(1, maxBatch), _steps)).Enqueue(request);
        await foreach (var piece in request.Output.Reader.ReadAllAsync(cancellationToken))
        {
            yield return piece;
        }
    }

    public async Task<GenerationResult> CompleteAsync(TransformerModel model, IReadOnlyList<ChatTurn> messages, SamplingOptions options,
        IReadOnlyList<string>? stop = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        GenerationResult? result = null;
        await foreach (var piece in StreamAsync(model, messages, options, stop, cancellationToken))
        {
            text.Append(piece.Delta);
            result = piece.Result ?? result;
        }

        return result! with { Text = text.ToString() };
    }

    private sealed record Request(Reply Reply, CancellationToken Cancellation)
    {
        public Channel<(string Delta, GenerationResult? Result)> Output { get; } =
            Channel.CreateUnbounded<(string, GenerationResult?)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }

    /// <summary>
    /// The requests for one model and the lanes that step them. A lane is a loop with its own batch; up to one lane per
    /// core runs while there is work, each admitting waiting requests up to its fair share. Alone, a lane's kernels use
    /// every core; when several run, each keeps to its own thread, since the lanes already fill the machine and a
    /// fork/join per kernel would cost more than the small decoding kernels take.
    /// </summary>
    private sealed class ModelBatch(TransformerModel model, int maxBatch, SemaphoreSlim steps)
    {
        private readonly Queue<Request> _waiting = new();
        private readonly ConcurrentBag<KvCacheDecoder> _decoders = [];
        private readonly int _lanes = Environment.ProcessorCount;
        private int _runningLanes;
        private int _active;

        public void Enqueue(Request request)
        {
            lock (_waiting)
            {
                _waiting.Enqueue(request);
                if (_runningLanes >= _lanes || _runningLanes > _active)
                {
                    return;
                }

                _runningLanes++;
            }

            _ = Task.Run(RunLaneAsync);
        }

        private async Task RunLaneAsync()
        {
            var decoder = _decoders.TryTake(out var pooled) ? pooled : new KvCacheDecoder(model);
            var laneCapacity = Math.Max(1, (maxBatch + _lanes - 1) / _lanes);
            var active = new List<Request>();
            while (true)
            {
                bool alone;
                lock (_waiting)
                {
                    var share = (_active + _waiting.Count + _runningLanes - 1) / _runningLanes;
                    while (active.Count < Math.Min(laneCapacity, share) && _waiting.TryDequeue(out var next))
                    {
                        active.Add(next);
                        _active++;
                    }

                    if (active.Count == 0)
                    {
                        _runningLanes--;
                        _decoders.Add(decoder);
                        return;
                    }

                    alone = _runningLanes == 1;
                }

                Retire(active, request =>
                {
                    if (!request.Cancellation.IsCancellationRequested)
                    {
                        return false;
                    }

                    request.Output.Writer.TryComplete(new OperationCanceledException(request.Cancellation));
                    return true;
                });
                if (active.Count == 0)
                {
                    continue;
                }

                var work = active.Select(request => (request.Reply.Sequence, request.Reply.TakeTokensToDecode())).ToList();
                await steps.WaitAsync();
                try
                {
                    decoder.Step(work, singleThreaded: !alone);
                }
                catch (Exception ex)
                {
                    // A failed step leaves this batch's caches undefined: fail its requests, keep serving the others.
                    Retire(active, request =>
                    {
                        request.Output.Writer.TryComplete(ex);
                        return true;
                    });
                    continue;
                }
                finally
                {
                    steps.Release();
                }

                Retire(active, request =>
                {
                    var delta = request.Reply.Advance();
                    var result = request.Reply.Result;
                    if (delta.Length > 0 || result is not null)
                    {
                        request.Output.Writer.TryWrite((delta, result));
                    }

                    if (result is null)
                    {
                        return false;
                    }

                    request.Output.Writer.TryComplete();
                    return true;
                });
            }
        }

        /// <summary>Removes the requests for which done says true from the lane and from the model's count.</summary>
        private void Retire(List<Request> active, Func<Request, bool> done)
        {
            var removed = active.RemoveAll(request => done(request));
            if (removed > 0)
            {
                lock (_waiting)
                {
                    _active -= removed;
                }
            }
        }
    }
}
