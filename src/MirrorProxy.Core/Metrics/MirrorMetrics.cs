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
/// The mirror's instruments (System.Diagnostics.Metrics). Labels are low-cardinality: upstream name, request kind,
/// result, status class; never a repository, tag or digest.
/// </summary>
internal sealed class MirrorMetrics
{
    public const string MeterName = "MirrorProxy";

    private readonly Counter<long> _requests;
    private readonly Counter<long> _bytesServed;
    private readonly Counter<long> _bytesFetched;
    private readonly Histogram<double> _upstreamDuration;
    private readonly Counter<long> _digestMismatches;

    public MirrorMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("mirrorproxy.requests", "{request}", "Registry requests by kind, result and upstream.");
        _bytesServed = meter.CreateCounter<long>("mirrorproxy.served.bytes", "By", "Content bytes sent to clients, by source.");
        _bytesFetched = meter.CreateCounter<long>("mirrorproxy.upstream.fetched.bytes", "By", "Content bytes downloaded from upstreams.");
        _upstreamDuration = meter.CreateHistogram<double>("mirrorproxy.upstream.request.duration", "s", "Time to upstream response headers.");
        _digestMismatches = meter.CreateCounter<long>("mirrorproxy.digest.mismatches", "{blob}", "Upstream content whose digest or size did not verify.");
    }

    public void Request(string kind, string result, string upstream)
    {
        if (_requests.Enabled)
        {
            _requests.Add(1, new TagList { { "kind", kind }, { "result", result }, { "upstream", upstream } });
        }
    }

    public void BytesServed(long bytes, bool fromCache)
    {
        if (_bytesServed.Enabled && bytes > 0)
        {
            _bytesServed.Add(bytes, new KeyValuePair<string, object?>("source", fromCache ? "cache" : "upstream"));
        }
    }

    public void BytesFetched(long bytes, string upstream)
    {
        if (_bytesFetched.Enabled && bytes > 0)
        {
            _bytesFetched.Add(bytes, new KeyValuePair<string, object?>("upstream", upstream));
        }
    }

    public void UpstreamRequest(string upstream, string outcome, double seconds)
    {
        if (_upstreamDuration.Enabled)
        {
            _upstreamDuration.Record(seconds, new TagList { { "upstream", upstream }, { "outcome", outcome } });
        }
    }

    public void DigestMismatch(string upstream)
    {
        _digestMismatches.Add(1, new KeyValuePair<string, object?>("upstream", upstream));
    }
}
