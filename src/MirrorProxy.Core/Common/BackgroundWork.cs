using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Common;

/// <summary>
/// Work that outlives the request that started it (blob downloads, upstream probes, revalidations): registered
/// here, run on the thread pool with the application's stopping token, and awaited at shutdown, so no download is
/// left writing to the cache after the index has taken its final checkpoint.
/// </summary>
internal sealed partial class BackgroundWork : IHostedService, IDisposable
{
    private readonly ConcurrentDictionary<long, Task> _running = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger<BackgroundWork> _logger;
    private long _next;

    public BackgroundWork(ILogger<BackgroundWork> logger) => _logger = logger;

    /// <summary>Cancelled when the application stops.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Work running now.</summary>
    public int Count => _running.Count;

    /// <summary>Runs <paramref name="work"/> in the background, tracked until it ends. Failures are logged, never thrown.</summary>
    public Task Run<TState>(string name, Func<TState, CancellationToken, Task> work, TState state)
    {
        var id = Interlocked.Increment(ref _next);
        var token = _stopping.Token;
        var task = Task.Run(async () =>
        {
            try
            {
                await work(state, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                Log.WorkFailed(_logger, name, ex);
            }
            finally
            {
                _running.TryRemove(id, out _);
            }
        }, CancellationToken.None);
        _running.TryAdd(id, task);
        if (task.IsCompleted)
        {
            // It ended before it was added: its own removal ran first.
            _running.TryRemove(id, out _);
        }

        return task;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Cancels every piece of work and waits for it to end (within the host's shutdown timeout).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_running.Values).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Log.StopTimedOut(_logger, _running.Count);
        }
    }

    public void Dispose() => _stopping.Dispose();

    private static partial class Log
    {
        [LoggerMessage(9001, LogLevel.Error, "Background work {Name} failed")]
        public static partial void WorkFailed(ILogger logger, string name, Exception exception);

        [LoggerMessage(9002, LogLevel.Warning, "{Count} background operations were still running when the shutdown timeout ended")]
        public static partial void StopTimedOut(ILogger logger, int count);
    }
}
