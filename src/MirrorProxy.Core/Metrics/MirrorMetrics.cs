using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;

namespace MirrorProxy.Metrics;

/// <summary>Request kinds used as a metric label.</summary>
internal static class RequestKinds
{
    public const string Manifest = "manifest";
    public const string Blob = "blob";
    public const string Tags = "tags";
    public const string Referrers = "referrers";
}

/// <summary>Request results used as a metric label.</summary>
internal static class RequestResults
{
    public const string Hit = "hit";
    public const string Miss = "miss";
    public const string Stale = "stale";
    public const string Coalesced = "coalesced";
    public const string NotFound = "not_found";
    public const string Error = "error";
}

/// <summary>Why cached content was moved aside: its length or its digest no longer matched.</summary>
internal static class QuarantineReasons
{
    public const string Size = "size";
    public const string Digest = "digest";

    public static readonly string[] All = [Size, Digest];
}

/// <summary>Why a write to the cache failed.</summary>
internal static class CacheWriteErrors
{
    public const string NoSpace = "no_space";
    public const string ReadOnly = "read_only";
    public const string Io = "io";

    public static readonly string[] All = [NoSpace, ReadOnly, Io];
}

/// <summary>How a call to the coordination store ended.</summary>
internal static class CoordinationOutcomes
{
    public const string Answered = "answered";
    /// <summary>Failed or not answered within <c>Coordination:Timeout</c>.</summary>
    public const string Unanswered = "unanswered";
    /// <summary>Not asked: a call failed within the hold-down, so the store is taken as unreachable without waiting for it.</summary>
    public const string HeldDown = "held_down";

    public static readonly string[] All = [Answered, Unanswered, HeldDown];
}

/// <summary>
/// The mirror's instruments (System.Diagnostics.Metrics, meter <c>MirrorProxy</c>). Names carry no unit words:
/// the exporter derives <c>_total</c>, <c>_bytes</c> and <c>_seconds</c> from the instrument kind and unit.
/// Labels are low-cardinality (upstream, kind, result, status): never a repository, tag or digest.
/// Counters that alerts read with <c>increase()</c> are observable counters over <see cref="LabelledCounts"/>, exported
/// at zero from the first scrape for every known label value (each configured upstream, each reason), so that the
/// first event is an increase and not the appearance of a series.
/// </summary>
internal sealed class MirrorMetrics
{
    public const string MeterName = "MirrorProxy";

    private static readonly double[] DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _requests;
    private readonly Counter<long> _served;
    private readonly Counter<long> _fetched;
    private readonly Histogram<double> _upstreamDuration;
    private readonly LabelledCounts _digestMismatches = new("upstream");
    private readonly LabelledCounts _pullsFailed = new("upstream");
    private readonly LabelledCounts _quarantined = new("reason", QuarantineReasons.All);
    private readonly LabelledCounts _writeFailures = new("error", CacheWriteErrors.All);
    private readonly LabelledCounts _coordinationCalls = new("outcome");
    private readonly Counter<long> _evictions;
    private readonly Counter<long> _evicted;
    private readonly ConcurrentDictionary<string, long> _rateLimitRemaining = new(StringComparer.Ordinal);

    public MirrorMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(MeterName);
        _requests = Meter.CreateCounter<long>("mirrorproxy.requests", "{request}", "Registry requests by kind, result (hit, miss, stale, coalesced, not_found, error) and upstream.");
        _served = Meter.CreateCounter<long>("mirrorproxy.served", "By", "Content bytes sent to clients, by source (cache, or a download in progress) and upstream.");
        _fetched = Meter.CreateCounter<long>("mirrorproxy.upstream.fetched", "By", "Blob bytes downloaded from each upstream.");
        _upstreamDuration = Meter.CreateHistogram<double>("mirrorproxy.upstream.request.duration", "s", "Time to upstream response headers, by upstream and status.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        Meter.CreateObservableCounter("mirrorproxy.digest.mismatches", _digestMismatches.Observe, "{object}", "Upstream content whose digest or size did not verify.");
        Meter.CreateObservableCounter("mirrorproxy.pulls.failed", _pullsFailed.Observe, "{request}",
            "Pulls answered with an error for content that was not cached, by upstream.");
        Meter.CreateObservableCounter("mirrorproxy.cache.quarantined", _quarantined.Observe, "{object}",
            "Cached objects moved aside because their size or digest no longer matched (reason: size, digest).");
        Meter.CreateObservableCounter("mirrorproxy.cache.write.failures", _writeFailures.Observe, "{write}",
            "Writes to the cache that failed (error: no_space, read_only, io).");
        Meter.CreateObservableCounter("mirrorproxy.coordination.calls", _coordinationCalls.Observe, "{call}",
            "Calls to the coordination store by outcome: answered, unanswered (failed or timed out), held_down (not asked, after a recent failure).");
        _evictions = Meter.CreateCounter<long>("mirrorproxy.cache.evictions", "{object}", "Content objects evicted to stay within the size budget.");
        _evicted = Meter.CreateCounter<long>("mirrorproxy.cache.evicted", "By", "Bytes evicted to stay within the size budget.");
        Meter.CreateObservableGauge("mirrorproxy.upstream.ratelimit.remaining", ObserveRateLimits, "{request}", "Pulls left in the upstream's rate-limit window (Docker Hub ratelimit-remaining).");
    }

    /// <summary>The meter, for gauges observed by the components that own the state.</summary>
    public Meter Meter { get; }

    public void Request(string kind, string result, string upstream)
    {
        if (_requests.Enabled)
        {
            _requests.Add(1, new TagList { { "kind", kind }, { "result", result }, { "upstream", upstream } });
        }
    }

    public void BytesServed(long bytes, bool fromCache, string upstream)
    {
        if (_served.Enabled && bytes > 0)
        {
            _served.Add(bytes, new KeyValuePair<string, object?>("source", fromCache ? "cache" : "download"), new KeyValuePair<string, object?>("upstream", upstream));
        }
    }

    public void BytesFetched(long bytes, string upstream)
    {
        if (_fetched.Enabled && bytes > 0)
        {
            _fetched.Add(bytes, new KeyValuePair<string, object?>("upstream", upstream));
        }
    }

    public void UpstreamRequest(string upstream, string status, double seconds)
    {
        if (_upstreamDuration.Enabled)
        {
            _upstreamDuration.Record(seconds, new TagList { { "upstream", upstream }, { "status", status } });
        }
    }

    /// <summary>Exports the per-upstream counters at zero for each configured upstream.</summary>
    public void KnowUpstreams(IEnumerable<string> upstreams)
    {
        foreach (var upstream in upstreams)
        {
            _digestMismatches.Know(upstream);
            _pullsFailed.Know(upstream);
        }
    }

    public void DigestMismatch(string upstream) => _digestMismatches.Increment(upstream);

    /// <summary>A pull answered with an error for content the cache did not hold.</summary>
    public void PullFailed(string upstream) => _pullsFailed.Increment(upstream);

    /// <summary>A cached object moved aside; <paramref name="reason"/> is one of <see cref="QuarantineReasons"/>.</summary>
    public void Quarantined(string reason) => _quarantined.Increment(reason);

    /// <summary>A failed cache write; <paramref name="error"/> is one of <see cref="CacheWriteErrors"/> (the cache's health says whether it is degraded).</summary>
    public void CacheWriteFailed(string error) => _writeFailures.Increment(error);

    /// <summary>Exports the coordination call counts at zero: a coordination store is configured.</summary>
    public void KnowCoordination()
    {
        foreach (var outcome in CoordinationOutcomes.All)
        {
            _coordinationCalls.Know(outcome);
        }
    }

    /// <summary>A call to the coordination store; <paramref name="outcome"/> is one of <see cref="CoordinationOutcomes"/>.</summary>
    public void CoordinationCall(string outcome) => _coordinationCalls.Increment(outcome);

    public void Evicted(long bytes)
    {
        _evictions.Add(1);
        _evicted.Add(bytes);
    }

    public void RateLimitRemaining(string upstream, long remaining) => _rateLimitRemaining[upstream] = remaining;

    private IEnumerable<Measurement<long>> ObserveRateLimits()
    {
        foreach (var (upstream, remaining) in _rateLimitRemaining)
        {
            yield return new Measurement<long>(remaining, new KeyValuePair<string, object?>("upstream", upstream));
        }
    }
}

/// <summary>
/// Counts by one label, for an observable counter: known label values are exported at zero before their first
/// event. Unknown values are added on first use; callers pass values from a closed set (upstream names, reasons).
/// </summary>
internal sealed class LabelledCounts
{
    private readonly string _label;
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counts = new(StringComparer.Ordinal);

    public LabelledCounts(string label, IEnumerable<string>? known = null)
    {
        _label = label;
        foreach (var value in known ?? [])
        {
            Know(value);
        }
    }

    public void Know(string value) => _counts.GetOrAdd(value, static _ => new StrongBox<long>());

    public void Increment(string value) => Interlocked.Increment(ref _counts.GetOrAdd(value, static _ => new StrongBox<long>()).Value);

    public IEnumerable<Measurement<long>> Observe()
    {
        foreach (var (value, count) in _counts)
        {
            yield return new Measurement<long>(Interlocked.Read(ref count.Value), new KeyValuePair<string, object?>(_label, value));
        }
    }
}
