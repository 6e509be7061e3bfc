using System.Diagnostics;
using System.Diagnostics.Metrics;
using MirrorProxy.Metrics;

namespace MirrorProxy.Helm;

/// <summary>What a Helm request was for, as a metric label.</summary>
internal static class HelmRequestKinds
{
    public const string Index = "index";
    public const string Chart = "chart";
    public const string Provenance = "provenance";
}

/// <summary>
/// Instruments of the Helm repositories, on the mirror's meter: <c>mirrorproxy.helm.requests</c> by kind, result
/// (hit, miss, stale, coalesced, not_found, error) and repository (a configured name: low cardinality), and
/// <c>mirrorproxy.helm.served</c>, bytes sent by kind and source.
/// </summary>
internal sealed class HelmMetrics
{
    private readonly Counter<long> _requests;
    private readonly Counter<long> _served;

    public HelmMetrics(MirrorMetrics metrics)
    {
        _requests = metrics.Meter.CreateCounter<long>("mirrorproxy.helm.requests", "{request}", "Helm repository requests by kind (index, chart, provenance), result and repository.");
        _served = metrics.Meter.CreateCounter<long>("mirrorproxy.helm.served", "By", "Helm index and chart bytes sent to clients, by kind and source (cache, or a download in progress).");
    }

    public void Request(string kind, string result, string repository)
    {
        if (_requests.Enabled)
        {
            _requests.Add(1, new TagList { { "kind", kind }, { "result", result }, { "repository", repository } });
        }
    }

    public void Served(string kind, long bytes, bool fromCache)
    {
        if (_served.Enabled && bytes > 0)
        {
            _served.Add(bytes, new TagList { { "kind", kind }, { "source", fromCache ? "cache" : "download" } });
        }
    }
}
