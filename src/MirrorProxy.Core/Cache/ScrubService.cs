using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Storage;

namespace MirrorProxy.Cache;

/// <summary>What one scrub round found (since <see cref="ResumedAt"/>, a shard, when it went on from where a stopped process left it).</summary>
internal readonly record struct ScrubReport(long Objects, long Bytes, int Damaged, DateTimeOffset Completed, string? ResumedAt);

/// <summary>
/// Re-hashes every cached object in the background at <c>Cache:ScrubRate</c> bytes a second, one round every
/// <c>Cache:ScrubInterval</c> (the time of the last completed round survives restarts), and quarantines what does
/// not verify or has another size than indexed: a flipped bit on an SD card is found before a node pulls it.
/// <list type="bullet">
/// <item>The rate counts what the disk reads: whole blocks, at least one per object. A cache of small objects is
/// otherwise walked as fast as files open (200,000 a second here), with the CPU and the allocation that go with it.</item>
/// <item>A round goes through the store shard by shard (<see cref="ContentShards"/>) and records the shard it is in:
/// a round stopped by a restart goes on from that shard at the next start, rather than from the first object (a
/// terabyte at the default 20 MiB/s takes 15 hours, longer than many nodes stay up).</item>
/// <item>The first round waits until the index is trusted, then <c>Cache:ScrubStartDelay</c>: after a crash the
/// rebuild walks the files first (two walks at once on a node that just lost its power would only slow each other
/// down), and the minutes after any start belong to the nodes pulling again.</item>
/// </list>
/// </summary>
internal sealed partial class ScrubService : BackgroundService
{
    private const string StateKey = MetadataKeys.LocalPrefix + "scrub-completed";

    /// <summary>The shard the round in progress is in: every shard before it has been scrubbed. None between rounds.</summary>
    internal const string CursorKey = MetadataKeys.LocalPrefix + "scrub-cursor";
    private const long BlockSize = 4096;

    private readonly MirrorCache _cache;
    private readonly TimeProvider _time;
    private readonly CacheOptions _options;
    private readonly ILogger<ScrubService> _logger;
    private ScrubReport? _last;

    public ScrubService(MirrorCache cache, TimeProvider time, IOptions<CacheOptions> options, ILogger<ScrubService> logger)
    {
        _cache = cache;
        _time = time;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>The last round completed by this process.</summary>
    public ScrubReport? LastRound => _last;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_options.ScrubRate.Bytes <= 0)
        {
            return;
        }

        try
        {
            await _cache.WhenIndexTrusted.WaitAsync(stoppingToken).ConfigureAwait(false);
            if (_options.ScrubStartDelay > TimeSpan.Zero)
            {
                await Task.Delay(_options.ScrubStartDelay, _time, stoppingToken).ConfigureAwait(false);
            }

            while (!stoppingToken.IsCancellationRequested)
            {
                // A round a stop interrupted is still due; otherwise the next starts an interval after the last.
                if (await ReadCursorAsync(stoppingToken).ConfigureAwait(false) is null)
                {
                    var lastCompleted = await ReadLastCompletedAsync(stoppingToken).ConfigureAwait(false);
                    var due = lastCompleted + _options.ScrubInterval - _time.GetUtcNow();
                    if (due > TimeSpan.Zero)
                    {
                        await Task.Delay(due, _time, stoppingToken).ConfigureAwait(false);
                    }
                }

                _last = await ScrubAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task<DateTimeOffset> ReadLastCompletedAsync(CancellationToken cancellationToken)
    {
        var document = await _cache.Metadata.ReadAsync(StateKey, 64, cancellationToken).ConfigureAwait(false);
        return document is not null && long.TryParse(document, NumberStyles.None, CultureInfo.InvariantCulture, out var milliseconds)
            ? DateTimeOffset.FromUnixTimeMilliseconds(milliseconds)
            : DateTimeOffset.MinValue;
    }

    private async Task<string?> ReadCursorAsync(CancellationToken cancellationToken)
    {
        var document = await _cache.Metadata.ReadAsync(CursorKey, 64, cancellationToken).ConfigureAwait(false);
        return document is { Length: > 0 } ? Encoding.ASCII.GetString(document) : null;
    }

    /// <summary>
    /// One round over every stored object, or the rest of the round a stopped process left (from the shard it was
    /// in). Records the shard it is in as it goes, and the round's completion at its end.
    /// </summary>
    internal async Task<ScrubReport> ScrubAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var resumedAt = await ReadCursorAsync(cancellationToken).ConfigureAwait(false);
        if (resumedAt is not null)
        {
            Log.RoundResumed(_logger, resumedAt);
        }

        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        long objects = 0, bytes = 0, charged = 0;
        var damaged = 0;
        var shard = resumedAt;
        try
        {
            await foreach (var stored in _cache.Store.EnumerateAsync(namedSince: DateTimeOffset.MinValue, fromShard: resumedAt, cancellationToken).ConfigureAwait(false))
            {
                if (!ContentShards.Of(stored.Digest).SequenceEqual(shard))
                {
                    // Every object of the shards before this one has been scrubbed (a write per shard: 256 a round).
                    shard = ContentShards.Of(stored.Digest).ToString();
                    await _cache.Metadata.WriteAsync(CursorKey, Encoding.ASCII.GetBytes(shard), cancellationToken).ConfigureAwait(false);
                }

                // The index knows the size it was stored with: a file of another size is damaged, and the totals count the indexed size.
                var indexed = await _cache.Index.GetContentAsync(stored.Digest).ConfigureAwait(false);
                var verdict = indexed is { } entry && entry.Size != stored.Size
                    ? QuarantineReason.Size
                    : await VerifyAsync(stored, buffer, started, charged, cancellationToken).ConfigureAwait(false);
                objects++;
                bytes += stored.Size;
                charged += Blocks(stored.Size);
                if (verdict is { } reason)
                {
                    damaged++;
                    await _cache.QuarantineAsync(stored.Digest, indexed?.Size ?? stored.Size, reason, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var report = new ScrubReport(objects, bytes, damaged, _time.GetUtcNow(), resumedAt);
        var completed = Encoding.ASCII.GetBytes(report.Completed.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        await _cache.Metadata.WriteAsync(StateKey, completed, cancellationToken).ConfigureAwait(false);
        await _cache.Metadata.DeleteAsync(CursorKey, cancellationToken).ConfigureAwait(false);
        Log.RoundCompleted(_logger, objects, bytes, damaged, _time.GetElapsedTime(started).TotalSeconds);
        return report;
    }

    /// <summary>What reading an object costs the disk: its size in whole blocks, at least one.</summary>
    internal static long Blocks(long size) => Math.Max(BlockSize, (size + BlockSize - 1) / BlockSize * BlockSize);

    /// <summary>Hashes one object at the bounded rate. Null when it verifies (or cannot be judged); else why it is damaged.</summary>
    private async Task<QuarantineReason?> VerifyAsync(StoredObject stored, byte[] buffer, long started, long chargedBefore, CancellationToken cancellationToken)
    {
        var result = await ContentVerifier.VerifyAsync(_cache.Store, stored, buffer, (read, ct) => PaceAsync(started, chargedBefore + read, ct), cancellationToken)
            .ConfigureAwait(false);
        switch (result)
        {
            case VerifyResult.WrongSize:
                return QuarantineReason.Size;
            case VerifyResult.WrongDigest:
                return QuarantineReason.Digest;
            case VerifyResult.Unreadable:
                Log.Unreadable(_logger, stored.Digest.Value);
                return null;
            default:
                return null;
        }
    }

    private async ValueTask PaceAsync(long started, long bytes, CancellationToken cancellationToken)
    {
        var due = TimeSpan.FromSeconds((double)bytes / _options.ScrubRate.Bytes);
        var ahead = due - _time.GetElapsedTime(started);
        if (ahead > TimeSpan.FromMilliseconds(5))
        {
            await Task.Delay(ahead, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2040, LogLevel.Information, "Scrub round done: {Objects} objects, {Bytes} bytes re-hashed, {Damaged} damaged and quarantined, in {ElapsedSeconds:0.#} s")]
        public static partial void RoundCompleted(ILogger logger, long objects, long bytes, int damaged, double elapsedSeconds);

        [LoggerMessage(2042, LogLevel.Information, "Scrub round goes on from shard {Shard}, where a stop interrupted it")]
        public static partial void RoundResumed(ILogger logger, string shard);

        [LoggerMessage(2041, LogLevel.Warning, "Scrub could not read {Digest}")]
        public static partial void Unreadable(ILogger logger, string digest);
    }
}
