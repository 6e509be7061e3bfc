using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Cache;

/// <summary>Checkpoints the index on a timer while there are changes, and once more at shutdown.</summary>
internal sealed partial class CacheCheckpointService : BackgroundService
{
    private readonly MirrorCache _cache;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ILogger<CacheCheckpointService> _logger;

    public CacheCheckpointService(MirrorCache cache, TimeProvider time, IOptions<Hosting.MirrorProxyOptions> options, ILogger<CacheCheckpointService> logger)
    {
        _cache = cache;
        _time = time;
        _interval = options.Value.Cache.CheckpointInterval;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await CheckpointAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        await CheckpointAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task CheckpointAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _cache.CheckpointAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The index is rebuildable from the files; a failed checkpoint costs start-up time, not data.
            Log.CheckpointFailed(_logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2010, LogLevel.Warning, "Cache index checkpoint failed")]
        public static partial void CheckpointFailed(ILogger logger, Exception exception);
    }
}
