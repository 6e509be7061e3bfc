using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

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

/// <summary>
/// The mirror's instruments (System.Diagnostics.Metrics, meter <c>MirrorProxy</c>). Names carry no unit words:
/// the exporter derives <c>_total</c>, <c>_bytes</c> and <c>_seconds</c> from the instrument kind and unit.
/// Labels are low-cardinality (upstream, kind, result, status): never a repository, tag or digest.
/// </summary>
internal sealed class MirrorMetrics
{
    public const string MeterName = "MirrorProxy";

    private static readonly double[] DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _requests;
    private readonly Counter<long> _served;
    private readonly Counter<long> _fetched;
    private readonly Histogram<double> _upstreamDuration;
    private readonly Counter<long> _digestMismatches;
    private readonly Counter<long> _evictions;
    private readonly Counter<long> _evicted;
    private readonly Counter<long> _quarantined;
    private readonly Counter<long> _writeFailures;
    private readonly Counter<long> _pullsFailed;
    private readonly ConcurrentDictionary<string, long> _rateLimitRemaining = new(StringComparer.Ordinal);

    public MirrorMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(MeterName);
        _requests = Meter.CreateCounter<long>("mirrorproxy.requests", "{request}", "Registry requests by kind, result (hit, miss, stale, coalesced, not_found, error) and upstream.");
        _served = Meter.CreateCounter<long>("mirrorproxy.served", "By", "Content bytes sent to clients, by source (cache, or a download in progress).");
        _fetched = Meter.CreateCounter<long>("mirrorproxy.upstream.fetched", "By", "Blob bytes downloaded from each upstream.");
        _upstreamDuration = Meter.CreateHistogram<double>("mirrorproxy.upstream.request.duration", "s", "Time to upstream response headers, by upstream and status.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _digestMismatches = Meter.CreateCounter<long>("mirrorproxy.digest.mismatches", "{object}", "Upstream content whose digest or size did not verify.");
        _evictions = Meter.CreateCounter<long>("mirrorproxy.cache.evictions", "{object}", "Content objects evicted to stay within the size budget.");
        _evicted = Meter.CreateCounter<long>("mirrorproxy.cache.evicted", "By", "Bytes evicted to stay within the size budget.");
        _quarantined = Meter.CreateCounter<long>("mirrorproxy.cache.quarantined", "{object}", "Cached objects found damaged (reason: size or digest) and taken out of service.");
        _writeFailures = Meter.CreateCounter<long>("mirrorproxy.cache.write.failures", "{write}", "Cache writes that failed (error: no_space, read_only, io); the content was served without being kept.");
        _pullsFailed = Meter.CreateCounter<long>("mirrorproxy.pulls.failed", "{request}", "Requests for content that was not cached and could not be fetched, by upstream.");
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

    public void BytesServed(long bytes, bool fromCache)
    {
        if (_served.Enabled && bytes > 0)
        {
            _served.Add(bytes, new KeyValuePair<string, object?>("source", fromCache ? "cache" : "download"));
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

    public void DigestMismatch(string upstream) => _digestMismatches.Add(1, new KeyValuePair<string, object?>("upstream", upstream));

    public void Evicted(long bytes)
    {
        _evictions.Add(1);
        _evicted.Add(bytes);
    }

    public void Quarantined(string reason) => _quarantined.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void CacheWriteFailed(string error) => _writeFailures.Add(1, new KeyValuePair<string, object?>("error", error));

    public void PullFailed(string upstream) => _pullsFailed.Add(1, new KeyValuePair<string, object?>("upstream", upstream));

    public void RateLimitRemaining(string upstream, long remaining) => _rateLimitRemaining[upstream] = remaining;

    private IEnumerable<Measurement<long>> ObserveRateLimits()
    {
        foreach (var (upstream, remaining) in _rateLimitRemaining)
        {
            yield return new Measurement<long>(remaining, new KeyValuePair<string, object?>("upstream", upstream));
        }
    }
}
