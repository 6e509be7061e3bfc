using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Coordination;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.Readiness;

internal sealed record UpstreamReport(string Name, string State, string? Reason, DateTimeOffset? Since);

/// <summary>The body of <c>/readyz</c>.</summary>
/// <param name="Ready">Whether the mirror should receive traffic.</param>
/// <param name="Status"><c>ready</c>, <c>degraded</c> (serving, but something needs attention) or <c>not-ready</c>.</param>
/// <param name="Index"><c>ready</c>, or <c>rebuilding</c> after a crash (the mirror serves meanwhile).</param>
/// <param name="Problems">Why the mirror is not ready.</param>
/// <param name="Warnings">What is degraded: a cache that cannot take new content, low disk, an index being rebuilt, a shared store or coordination store out of reach.</param>
/// <param name="SharedStore"><c>none</c> (a single mirror), <c>ok</c>, or <c>unreachable</c> (this node serves what it holds locally).</param>
/// <param name="Coordination"><c>none</c>, <c>ok</c>, or <c>unreachable</c> (replicas work alone: downloads may be repeated).</param>
internal sealed record ReadinessReport(
    bool Ready, string Status, string Index, bool CacheWritable, bool CacheDegraded, long FreeDiskBytes, long MinFreeDiskBytes, long CacheBytes, long CacheObjects,
    IReadOnlyList<UpstreamReport> Upstreams, IReadOnlyList<string> Problems, IReadOnlyList<string> Warnings, string SharedStore = "none", string Coordination = "none");

/// <summary>
/// <c>/healthz</c>: the process serves. <c>/readyz</c>: whether the mirror should receive traffic, which it should
/// as long as it can serve its cache: a full or read-only disk, an index being rebuilt and unreachable upstreams
/// are reported (status <c>degraded</c>) but never take the mirror out of service, because an island mirror with
/// every upstream gone or its disk full is exactly when the nodes need what it holds. Only
/// <c>ReadyRequiresPinnedContent</c> makes missing pinned content a reason to be unready.
/// </summary>
internal static class HealthEndpoints
{
    public static void MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", static () => Results.Text("ok\n"));
        app.MapGet("/readyz", static async (MirrorCache cache, UpstreamRegistrySet upstreams, WarmUp.PinStore pins, ICoordination coordination, IOptions<CacheOptions> cacheOptions,
            IOptions<ReadinessOptions> readiness, CancellationToken cancellationToken) =>
        {
            var report = await CheckAsync(cache, upstreams, pins, coordination, cacheOptions.Value, readiness.Value, cancellationToken).ConfigureAwait(false);
            return Results.Json(report, ReadinessJsonContext.Default.ReadinessReport, statusCode: report.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
    }

    internal static async Task<ReadinessReport> CheckAsync(
        MirrorCache cache, UpstreamRegistrySet upstreams, WarmUp.PinStore pins, ICoordination coordination, CacheOptions cacheOptions, ReadinessOptions readiness,
        CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var warnings = new List<string>();
        var (probe, writeError) = await cache.Store.ProbeWritableAsync(cancellationToken).ConfigureAwait(false);
        var writable = probe == StorageStatus.Ok;
        if (!writable)
        {
            warnings.Add("cache directory not writable: " + writeError);
            cache.Health.WriteFailed(probe, "the readiness probe");
        }
        else
        {
            cache.Health.WriteSucceeded();
        }

        if (cache.Health.Describe() is { } degraded)
        {
            warnings.Add(degraded);
        }

        if (cache.DescribeIndexNotWritable() is { } index)
        {
            warnings.Add(index);
        }

        if (cache.Store.FreeSpace() is not { } free)
        {
            free = 0;
            warnings.Add("free disk space of the cache directory is unknown");
        }

        var floor = cacheOptions.MinFreeDisk.Bytes;
        if (free < floor)
        {
            warnings.Add($"free disk {free} bytes is below the floor of {floor} bytes");
        }

        var sharedStore = "none";
        if (cache.Shared is { } shared)
        {
            var (sharedProbe, sharedError) = await shared.Store.ProbeWritableAsync(cancellationToken).ConfigureAwait(false);
            sharedStore = sharedProbe == StorageStatus.Ok ? "ok" : "unreachable";
            if (sharedProbe != StorageStatus.Ok)
            {
                warnings.Add(sharedError + "; this node serves what it holds, and new content is not shared");
            }
        }

        var coordinationState = "none";
        if (coordination.IsShared)
        {
            coordinationState = await coordination.PingAsync(cancellationToken).ConfigureAwait(false) ? "ok" : "unreachable";
            if (coordinationState != "ok")
            {
                warnings.Add($"the coordination store {coordination.Describe} is unreachable: replicas work alone, and may download the same content");
            }
        }

        if (!cache.IndexTrusted)
        {
            warnings.Add("the cache index is being rebuilt from the files; everything cached is served meanwhile");
        }

        foreach (var set in pins.Sets)
        {
            if (await pins.CountMissingAsync(set, cancellationToken).ConfigureAwait(false) is > 0 and var missing)
            {
                (readiness.ReadyRequiresPinnedContent ? problems : warnings).Add($"pin set {set.Name} lacks {missing} objects");
            }
        }

        var ready = problems.Count == 0;
        var status = !ready ? "not-ready" : warnings.Count > 0 || !writable ? "degraded" : "ready";
        var upstreamReports = upstreams.All.Select(u => new UpstreamReport(
            u.Name, u.Resilience.State.ToString().ToLowerInvariant(), u.Resilience.Down?.Reason, u.Resilience.Down?.Since)).ToArray();
        return new ReadinessReport(
            ready, status, cache.IndexTrusted ? "ready" : "rebuilding", writable, cache.IsDegraded || !writable, free, floor, cache.TotalBytes, cache.ObjectCount,
            upstreamReports, problems, warnings, sharedStore, coordinationState);
    }
}

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ReadinessReport))]
internal sealed partial class ReadinessJsonContext : JsonSerializerContext;
