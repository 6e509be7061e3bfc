using MirrorProxy.Auth;
using MirrorProxy.Cache;
using MirrorProxy.Coordination;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;
using MirrorProxy.Resilience;
using MirrorProxy.Upstream;
using MirrorProxy.WarmUp;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Status;

/// <summary>
/// Reads the status page's data from the services that own it (offline switch, upstream breakers, cache, pins,
/// readiness, recent failures). The one place that knows where each fact comes from. What a viewer may not pull
/// (a private upstream's images and failures) is left out, or reported as the image check reports it to them.
/// </summary>
internal sealed class StatusSnapshotBuilder
{
    /// <summary>Images of an incomplete pin set checked one by one to name what is missing, and named at most.</summary>
    public const int MaxImagesChecked = 200;
    public const int MaxIncompleteListed = 20;

    private readonly OfflineMode _offline;
    private readonly UpstreamRegistrySet _upstreams;
    private readonly MirrorCache _cache;
    private readonly PinStore _pins;
    private readonly ICoordination _coordination;
    private readonly ImageCheckService _checker;
    private readonly PullFailureLog _failures;
    private readonly AccessPolicy _access;
    private readonly CacheOptions _cacheOptions;
    private readonly ReadinessOptions _readinessOptions;
    private readonly TimeProvider _time;

    public StatusSnapshotBuilder(
        OfflineMode offline, UpstreamRegistrySet upstreams, MirrorCache cache, PinStore pins, ICoordination coordination, ImageCheckService checker,
        PullFailureLog failures, AccessPolicy access, IOptions<CacheOptions> cacheOptions, IOptions<ReadinessOptions> readinessOptions, TimeProvider time)
    {
        _offline = offline;
        _upstreams = upstreams;
        _cache = cache;
        _pins = pins;
        _coordination = coordination;
        _checker = checker;
        _failures = failures;
        _access = access;
        _cacheOptions = cacheOptions.Value;
        _readinessOptions = readinessOptions.Value;
        _time = time;
    }

    public async Task<StatusSnapshot> BuildAsync(ClientIdentity viewer, CancellationToken cancellationToken)
    {
        var readiness = await HealthEndpoints.CheckAsync(_cache, _upstreams, _pins, _coordination, _cacheOptions, _readinessOptions, cancellationToken).ConfigureAwait(false);
        var cache = new CacheStatus(_cache.TotalBytes, _cache.ObjectCount, _cacheOptions.MaxSize?.Bytes, readiness.FreeDiskBytes,
            readiness.MinFreeDiskBytes, readiness.CacheWritable && !_cache.IsDegraded);
        var upstreams = _upstreams.All
            .Select(u => new UpstreamStatus(u.Name, u.Options.Url, u.Resilience.State.ToString().ToLowerInvariant()))
            .ToArray();

        var pinSets = new List<PinSetStatus>();
        foreach (var set in _pins.Sets.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            pinSets.Add(await DescribeAsync(set, viewer, cancellationToken).ConfigureAwait(false));
        }

        var failures = _failures.Recent()
            .Where(f => !_upstreams.All.Any(u => u.Name == f.Upstream && _access.Decide(viewer, u, f.Repository) != AccessDecision.Allowed))
            .ToList();

        var latest = pinSets.OrderByDescending(s => s.UpdatedAt).FirstOrDefault();
        var warmUp = latest is null ? null : new WarmUpStatus(latest.UpdatedAt, latest.Name, latest.Complete);
        return new StatusSnapshot(_time.GetUtcNow(), Verdict(cache, pinSets), _offline.IsEnabled, upstreams, cache, pinSets,
            failures, _failures.Total, warmUp);
    }

    private async Task<PinSetStatus> DescribeAsync(PinSet set, ClientIdentity viewer, CancellationToken cancellationToken)
    {
        var missing = await _pins.CountMissingAsync(set, cancellationToken).ConfigureAwait(false);
        var incomplete = new List<IncompleteImage>();
        var more = false;
        if (missing > 0 && PlatformSelection.TryParse(set.Platforms, out var platforms, out _))
        {
            foreach (var image in set.Images.Take(MaxImagesChecked))
            {
                var result = await _checker.CheckAsync(image, platforms!, viewer, cancellationToken).ConfigureAwait(false);
                if (result.Status == ImageStatus.Ok)
                {
                    continue;
                }

                if (incomplete.Count == MaxIncompleteListed)
                {
                    more = true;
                    break;
                }

                var problem = result.Missing.Count switch
                {
                    0 => result.Status,
                    1 => result.Missing[0],
                    var n => $"{result.Missing[0]} and {n - 1} more",
                };
                incomplete.Add(new IncompleteImage(image, problem));
            }

            more |= set.Images.Count > MaxImagesChecked;
        }

        return new PinSetStatus(set.Name, set.Images.Count, set.Digests.Count, missing, set.Platforms, set.UpdatedAt, incomplete, more);
    }

    private static SailVerdict Verdict(CacheStatus cache, IReadOnlyList<PinSetStatus> pinSets)
    {
        var reasons = new List<string>();
        if (pinSets.Count == 0)
        {
            reasons.Add("Nothing is pinned: run the warm-up while the internet is there.");
        }

        foreach (var set in pinSets.Where(s => !s.Complete))
        {
            reasons.Add($"Pin set {set.Name} lacks {set.MissingObjects} of {set.Objects} objects: some images will not start offline.");
        }

        if (!cache.Writable)
        {
            reasons.Add("The cache cannot be written: new images cannot be kept.");
        }

        if (cache.FreeDiskBytes < cache.MinFreeDiskBytes)
        {
            reasons.Add("The cache disk is nearly full.");
        }

        return new SailVerdict(reasons.Count == 0, reasons);
    }
}
