using Grpc.Core;

namespace FineTunePlatform.Training.Worker.Training;

/// <summary>
/// The one retry policy of a worker's calls that must land (checkpoints, the final report): while the training
/// service is unreachable (restarting, a network blip), try again with backoff until the caller gives up.
/// </summary>
public static class TransientRpc
{
    public static async Task<T> RetryAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        for (var delay = TimeSpan.FromMilliseconds(200); ; delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(4).Ticks)))
        {
            try
            {
                return await call();
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Aborted or StatusCode.DeadlineExceeded
                && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(delay, cancellationToken);
            }
        }
    }
}
