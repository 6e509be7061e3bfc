using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Oci;

namespace MirrorProxy.Coordination;

/// <summary>What a replica about to download a blob should do.</summary>
internal enum DownloadClaim
{
    /// <summary>Download it: this replica holds the lease (or is alone).</summary>
    Claimed,
    /// <summary>Another replica stored it in the shared store meanwhile: read it from there.</summary>
    StoredElsewhere,
    /// <summary>Download it without a lease: the coordination store cannot be asked, or the wait for another replica ran out.</summary>
    Uncoordinated,
}

/// <summary>
/// One download per blob across replicas that share a store. The replica that takes the blob's lease downloads it
/// (and keeps the lease until its copy is in the shared store); the others wait, looking at the shared store, and
/// read the blob from there once it is committed. A holder that dies stops renewing its lease, which then expires,
/// and a waiter takes over. Waiting (rather than streaming from the holder) keeps replicas from depending on each
/// other's addresses; what it costs a waiter is measured in the benchmarks.
/// </summary>
internal sealed partial class DownloadCoordinator
{
    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromMilliseconds(500);

    private readonly ICoordination _coordination;
    private readonly MirrorCache _cache;
    private readonly CoordinationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<DownloadCoordinator> _logger;

    public DownloadCoordinator(ICoordination coordination, MirrorCache cache, IOptions<CoordinationOptions> options, TimeProvider time, ILogger<DownloadCoordinator> logger)
    {
        _coordination = coordination;
        _cache = cache;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>Whether downloads are coordinated at all: replicas that share a content store and a coordination store.</summary>
    public bool IsActive => _coordination.IsShared && _cache.Shared is not null;

    /// <summary>
    /// Claims the download of <paramref name="digest"/>, waiting while another replica holds it. The lease (when one
    /// is returned) is the caller's to dispose once its copy is in the shared store.
    /// </summary>
    public async ValueTask<(DownloadClaim Claim, Lease? Lease)> ClaimAsync(Digest digest, CancellationToken cancellationToken)
    {
        if (!IsActive)
        {
            return (DownloadClaim.Claimed, null);
        }

        var shared = _cache.Shared!;
        var name = "blob:" + digest.Value;
        var started = _time.GetTimestamp();
        var poll = FirstPoll;
        var waited = false;
        while (true)
        {
            var (status, lease) = await _coordination.TryAcquireAsync(name, cancellationToken).ConfigureAwait(false);
            switch (status)
            {
                case LeaseStatus.Acquired when waited && (await shared.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false)).Exists:
                    // The holder finished (and released) between two looks.
                    await lease!.DisposeAsync().ConfigureAwait(false);
                    return (DownloadClaim.StoredElsewhere, null);
                case LeaseStatus.Acquired:
                    if (waited)
                    {
                        Log.TookOver(_logger, digest.Value, _time.GetElapsedTime(started).TotalMilliseconds);
                    }

                    return (DownloadClaim.Claimed, lease);
                case LeaseStatus.Unavailable:
                    return (DownloadClaim.Uncoordinated, null);
            }

            if (!waited)
            {
                waited = true;
                Log.Waiting(_logger, digest.Value);
            }

            if ((await shared.Store.StatAsync(digest, cancellationToken).ConfigureAwait(false)).Exists)
            {
                return (DownloadClaim.StoredElsewhere, null);
            }

            if (_time.GetElapsedTime(started) > _options.MaxWait)
            {
                Log.GaveUpWaiting(_logger, digest.Value, _options.MaxWait.TotalSeconds);
                return (DownloadClaim.Uncoordinated, null);
            }

            await Task.Delay(poll, _time, cancellationToken).ConfigureAwait(false);
            poll = TimeSpan.FromTicks(Math.Min(poll.Ticks * 2, LongestPoll.Ticks));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(7101, LogLevel.Debug, "Blob {Digest} is being fetched by another replica: waiting for it in the shared store")]
        public static partial void Waiting(ILogger logger, string digest);

        [LoggerMessage(7102, LogLevel.Warning, "Took over the download of {Digest} after {ElapsedMs:0} ms: the lease was released or expired without the blob reaching the shared store")]
        public static partial void TookOver(ILogger logger, string digest, double elapsedMs);

        [LoggerMessage(7103, LogLevel.Warning, "Gave up waiting {MaxWaitSeconds:0} s for another replica's download of {Digest}: fetching it here")]
        public static partial void GaveUpWaiting(ILogger logger, string digest, double maxWaitSeconds);
    }
}
