using System.Diagnostics.Metrics;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using Microsoft.Extensions.Options;
using MirrorProxy.Resilience;
using MirrorProxy.Upstream;

namespace MirrorProxy.Metrics;

/// <summary>Gauges observed from the state their owners keep: cache size, and each upstream's health.</summary>
internal sealed class MirrorGauges
{
    private static readonly UpstreamHealthState[] States = Enum.GetValues<UpstreamHealthState>();

    public MirrorGauges(
        MirrorMetrics metrics, MirrorCache cache, UpstreamRegistrySet upstreams, WarmUp.PinStore pins, Common.BackgroundWork background, IOptions<CacheOptions> options)
    {
        var meter = metrics.Meter;
        metrics.KnowUpstreams(upstreams.All.Select(u => u.Name));
        meter.CreateObservableGauge("mirrorproxy.cache.size", () => cache.TotalBytes, "By", "Bytes of content in the cache.");
        if (options.Value.MaxSize is { } budget)
        {
            meter.CreateObservableGauge("mirrorproxy.cache.budget", () => budget.Bytes, "By", "The cache's size budget (Cache:MaxSize); absent when unbounded.");
        }

        meter.CreateObservableGauge("mirrorproxy.cache.objects", () => cache.ObjectCount, "{object}", "Content objects (blobs and manifests) in the cache.");
        meter.CreateObservableGauge("mirrorproxy.cache.disk.free", () => cache.Store.FreeSpace() ?? 0, "By", "Free space on the cache's file system.");
        meter.CreateObservableGauge("mirrorproxy.cache.degraded", () => cache.IsDegraded ? 1 : 0, "{state}", "1 while cache writes fail (full, read-only or failing disk), or the cache index takes no writes.");
        meter.CreateObservableGauge("mirrorproxy.pins.missing", () => ObservePins(pins, background), "{object}",
            "Objects reachable from each pin set that are not in the cache (counted from the files every few seconds).");
        meter.CreateObservableGauge("mirrorproxy.upstream.state", () => ObserveStates(upstreams), "{state}",
            "1 for each upstream's current state (healthy, down, probing, offline), 0 for the others.");
    }

    /// <summary>The last counts (a gauge cannot wait for the files), and a fresh count for the next scrape.</summary>
    private static IEnumerable<Measurement<long>> ObservePins(WarmUp.PinStore pins, Common.BackgroundWork background)
    {
        var sets = pins.Sets.ToList();
        background.Run("count pinned content", static async (s, ct) =>
        {
            foreach (var set in s.Sets)
            {
                await s.Pins.CountMissingAsync(set, ct).ConfigureAwait(false);
            }
        }, (Pins: pins, Sets: sets));
        foreach (var set in sets)
        {
            if (pins.LastMissing(set) is >= 0 and var missing)
            {
                yield return new Measurement<long>(missing, new KeyValuePair<string, object?>("pin_set", set.Name));
            }
        }
    }

    private static IEnumerable<Measurement<int>> ObserveStates(UpstreamRegistrySet upstreams)
    {
        foreach (var upstream in upstreams.All)
        {
            var current = upstream.Resilience.State;
            foreach (var state in States)
            {
                yield return new Measurement<int>(state == current ? 1 : 0,
                    new KeyValuePair<string, object?>("upstream", upstream.Name), new KeyValuePair<string, object?>("state", state.ToString().ToLowerInvariant()));
            }
        }
    }
}
