using MirrorProxy.Auth;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Storage;

namespace MirrorProxy.Readiness;

/// <summary>
/// Answers "would this image pull with the network gone?" from the cache alone: the tag (or digest), the
/// manifest, for an index the selected platforms' manifests, and every config and layer blob, each present in
/// full. It lists every piece of content the image needs, present or not, which is also what a pin protects
/// and what a warm-up fetches. It never dials an upstream, never reads a layer's bytes (their files are only
/// looked at), and reads as a manifest only what was stored as one and is small enough to be one.
/// </summary>
internal sealed class ImageCheckService
{
    private readonly MirrorCache _cache;
    private readonly UpstreamRouter _router;
    private readonly AccessPolicy _access;
    private readonly Helm.HelmChartCheck _charts;

    public ImageCheckService(MirrorCache cache, UpstreamRouter router, AccessPolicy access, Helm.HelmChartCheck charts)
    {
        _cache = cache;
        _router = router;
        _access = access;
        _charts = charts;
    }

    /// <summary>Checks images for <paramref name="identity"/>: what it may not pull is reported missing, with nothing about its content.</summary>
    public async Task<IReadOnlyList<ImageCheckResult>> CheckAsync(IEnumerable<string> images, PlatformSelection platforms, ClientIdentity identity, CancellationToken cancellationToken)
    {
        var results = new List<ImageCheckResult>();
        foreach (var image in images)
        {
            results.Add(await CheckAsync(image, platforms, identity, cancellationToken).ConfigureAwait(false));
        }

        return results;
    }

    public async Task<ImageCheckResult> CheckAsync(string image, PlatformSelection platforms, ClientIdentity identity, CancellationToken cancellationToken)
    {
        if (Helm.ChartReference.IsChart(image))
        {
            return await _charts.CheckAsync(image, identity, cancellationToken).ConfigureAwait(false);
        }

        if (!ImageReference.TryParse(image, out var reference, out var error))
        {
            return new ImageCheckResult(image, null, ImageStatus.Invalid, [error], [], TagMissing: false);
        }

        var walk = new Walk(image, reference!);
        if (!_router.TryGetUpstream(reference!.Registry, out var upstream))
        {
            walk.Problems.Add($"no upstream is configured for registry {reference.Registry}");
            walk.NotMirrored = true;
            return walk.Result();
        }

        var repository = upstream.NormalizeRepository(reference.Repository);
        switch (_access.Decide(identity, upstream, repository))
        {
            case AccessDecision.AuthenticationRequired:
                walk.Problems.Add($"registry {reference.Registry} is private: authenticate to check it");
                return walk.Result();
            case AccessDecision.Denied:
                walk.Problems.Add($"no upstream is configured for registry {reference.Registry} that you may read");
                return walk.Result();
        }

        Digest top;
        if (reference.Digest is { } digest)
        {
            top = digest;
        }
        else if (await _cache.GetTagAsync(upstream.Name, repository, reference.Tag!, cancellationToken).ConfigureAwait(false) is { } tag)
        {
            top = tag.Digest;
        }
        else
        {
            walk.Problems.Add($"tag {reference.Tag} is not cached");
            walk.TagMissing = true;
            return walk.Result();
        }

        var manifest = await ReadManifestAsync(walk, top, -1, null, "manifest", cancellationToken).ConfigureAwait(false);
        if (manifest is null)
        {
            return walk.Result();
        }

        if (!manifest.IsIndex)
        {
            await AddBlobsAsync(walk, manifest, null, cancellationToken).ConfigureAwait(false);
            return walk.Result();
        }

        var children = platforms.Select(manifest.Manifests, out var absent);
        foreach (var child in children)
        {
            var label = child.Platform?.ToString() ?? child.Digest.Value;
            if (await ReadManifestAsync(walk, child.Digest, child.Size, label, $"{label} manifest", cancellationToken).ConfigureAwait(false) is { } platformManifest)
            {
                await AddBlobsAsync(walk, platformManifest, label, cancellationToken).ConfigureAwait(false);
            }
        }

        foreach (var platform in absent)
        {
            walk.Problems.Add($"the image has no {platform} manifest");
        }

        return walk.Result();
    }

    private async Task<ManifestDocument?> ReadManifestAsync(Walk walk, Digest digest, long size, string? platform, string what, CancellationToken cancellationToken)
    {
        // The file decides, not a copy in memory: a check answers for what survives a restart. Content larger than
        // a manifest can be, or stored as a plain blob, is not read as one.
        byte[]? content = null;
        ContentEntry entry = default;
        if (await _cache.IsStoredAsync(digest, size, cancellationToken).ConfigureAwait(false)
            && await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is { Size: <= ManifestService.MaxManifestSize } found)
        {
            entry = await _cache.ResolveAsync(digest, found, cancellationToken).ConfigureAwait(false);
            if (entry.Kind == ContentKind.Manifest)
            {
                (_, content) = await _cache.ReadSmallAsync(digest, entry, cancellationToken).ConfigureAwait(false);
            }
        }

        if (content is null)
        {
            walk.Add(digest, "manifest", size, present: false, platform);
            walk.Problems.Add($"{what} {digest}");
            return null;
        }

        walk.Add(digest, "manifest", content.Length, present: true, platform);
        if (!ManifestDocument.TryParse(content, entry.MediaType ?? ManifestMediaType.Resolve(null, content), out var document))
        {
            walk.Problems.Add($"{what} {digest} is not a readable manifest");
            return null;
        }

        return document;
    }

    /// <summary>Blob files are the truth: each must exist with the size its descriptor gives. Their bytes are not read.</summary>
    private async Task AddBlobsAsync(Walk walk, ManifestDocument manifest, string? platform, CancellationToken cancellationToken)
    {
        var suffix = platform is null ? "" : $" of {platform}";
        foreach (var blob in manifest.Blobs)
        {
            var kind = blob == manifest.Config ? "config" : "layer";
            var present = await _cache.IsStoredAsync(blob.Digest, blob.Size, cancellationToken).ConfigureAwait(false);
            walk.Add(blob.Digest, kind, blob.Size, present, platform);
            if (!present)
            {
                walk.Problems.Add($"{kind} {blob.Digest}{suffix}");
            }
        }
    }

    /// <summary>What one image needs, gathered while walking it.</summary>
    private sealed class Walk(string image, ImageReference reference)
    {
        private readonly List<RequiredContent> _content = [];
        private readonly HashSet<string> _seen = new(StringComparer.Ordinal);

        public List<string> Problems { get; } = [];

        public bool TagMissing { get; set; }

        public bool NotMirrored { get; set; }

        public void Add(Digest digest, string kind, long size, bool present, string? platform)
        {
            if (_seen.Add(digest.Value))
            {
                _content.Add(new RequiredContent(digest.Value, kind, size, present, platform));
            }
        }

        public ImageCheckResult Result() =>
            new(image, reference.ToString(), NotMirrored ? ImageStatus.NotMirrored : Problems.Count == 0 ? ImageStatus.Ok : ImageStatus.Missing, Problems, _content, TagMissing);
    }
}
