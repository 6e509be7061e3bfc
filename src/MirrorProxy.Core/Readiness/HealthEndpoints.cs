using System.Text.Json.Serialization;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Upstream;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Readiness;

internal sealed record UpstreamReport(string Name, string State);

internal sealed record ReadinessReport(
    bool Ready, bool IndexLoaded, bool CacheWritable, long FreeDiskBytes, long MinFreeDiskBytes, long CacheBytes, long CacheObjects,
    IReadOnlyList<UpstreamReport> Upstreams, IReadOnlyList<string> Problems);

/// <summary>
/// <c>/healthz</c>: the process serves. <c>/readyz</c>: the index is loaded, the cache directory is writable and
/// the disk has room. Upstream reachability is reported but never makes the mirror unready: an island mirror
/// with every upstream gone is exactly when it must stay in service.
/// </summary>
internal static class HealthEndpoints
{
    public static void MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", static () => Results.Text("ok\n"));
        app.MapGet("/readyz", static (MirrorCache cache, UpstreamRegistrySet upstreams, WarmUp.PinStore pins, IOptions<MirrorProxyOptions> options, Metrics.MirrorMetrics metrics) =>
        {
            var report = Check(cache, upstreams, pins, options.Value);
            metrics.CacheWritable(report.CacheWritable);
            return Results.Json(report, ReadinessJsonContext.Default.ReadinessReport, statusCode: report.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        });
    }

    internal static ReadinessReport Check(MirrorCache cache, UpstreamRegistrySet upstreams, WarmUp.PinStore pins, MirrorProxyOptions options)
    {
        var problems = new List<string>();
        var writable = IsWritable(cache.Store.TempDirectory, out var writeError);
        if (!writable)
        {
            problems.Add("cache directory not writable: " + writeError);
        }

        if (cache.Store.FreeSpace() is not { } free)
        {
            free = 0;
            problems.Add("free disk space of the cache directory is unknown");
        }

        var floor = options.Cache.MinFreeDisk.Bytes;
        if (free < floor)
        {
            problems.Add($"free disk {free} bytes is below the floor of {floor} bytes");
        }

        if (options.ReadyRequiresPinnedContent)
        {
            foreach (var set in pins.Sets)
            {
                if (pins.CountMissing(set) is > 0 and var missing)
                {
                    problems.Add($"pin set {set.Name} lacks {missing} objects");
                }
            }
        }

        return new ReadinessReport(
            problems.Count == 0, IndexLoaded: true, writable, free, floor, cache.TotalBytes, cache.ObjectCount,
            upstreams.All.Select(u => new UpstreamReport(u.Name, u.Resilience.State.ToString().ToLowerInvariant())).ToArray(), problems);
    }

    private static bool IsWritable(string directory, out string error)
    {
        error = "";
        var probe = Path.Combine(directory, ".ready-" + Guid.NewGuid().ToString("N"));
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = ex.Message;
            return false;
        }
    }
}

[JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ReadinessReport))]
internal sealed partial class ReadinessJsonContext : JsonSerializerContext;
