using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Routing;

namespace MirrorProxy.Readiness;

/// <summary>
/// Answers "would this image pull with the network gone?" from the cache alone: the tag (or digest), the
/// manifest, for an index the selected platforms' manifests, and every config and layer blob, each present in
/// full. It lists every piece of content the image needs, present or not, which is also what a pin protects
/// and what a warm-up fetches. It never dials an upstream.
/// </summary>
internal sealed class ImageCheckService
{
    private readonly MirrorCache _cache;
    private readonly UpstreamRouter _router;

    public ImageCheckService(MirrorCache cache, UpstreamRouter router)
    {
        _cache = cache;
        _router = router;
    }

    public async Task<IReadOnlyList<ImageCheckResult>> CheckAsync(IEnumerable<string> images, PlatformSelection platforms, CancellationToken cancellationToken)
    {
        var results = new List<ImageCheckResult>();
        foreach (var image in images)
        {
            results.Add(await CheckAsync(image, platforms, cancellationToken).ConfigureAwait(false));
        }

        return results;
    }

    public async Task<ImageCheckResult> CheckAsync(string image, PlatformSelection platforms, CancellationToken cancellationToken)
    {
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
        Digest top;
        if (reference.Digest is { } digest)
        {
            top = digest;
        }
        else if (await _cache.TryGetTagAsync(upstream.Name, repository, reference.Tag!).ConfigureAwait(false) is { } tag)
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
            AddBlobs(walk, manifest, null);
            return walk.Result();
        }

        var children = platforms.Select(manifest.Manifests, out var absent);
        foreach (var child in children)
        {
            var label = child.Platform?.ToString() ?? child.Digest.Value;
            if (await ReadManifestAsync(walk, child.Digest, child.Size, label, $"{label} manifest", cancellationToken).ConfigureAwait(false) is { } platformManifest)
            {
                AddBlobs(walk, platformManifest, label);
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
        // The file decides, not a copy in memory: a check answers for what survives a restart.
        var onDisk = _cache.Store.TryStat(digest, out _);
        if (!onDisk)
        {
            _cache.Forget(digest); // a copy in memory or in the index must not hide a lost file from the next pull
        }

        var entry = onDisk ? await _cache.TryGetContentAsync(digest).ConfigureAwait(false) : null;
        var content = entry is null ? null : await _cache.ReadContentAsync(digest, cancellationToken).ConfigureAwait(false);
        if (entry is null || content is null || !digest.Matches(content))
        {
            walk.Add(digest, "manifest", size, present: false, platform);
            walk.Problems.Add($"{what} {digest}");
            return null;
        }

        walk.Add(digest, "manifest", content.Length, present: true, platform);
        if (!ManifestDocument.TryParse(content, entry.Value.MediaType ?? ManifestMediaType.Resolve(null, content), out var document))
        {
            walk.Problems.Add($"{what} {digest} is not a readable manifest");
            return null;
        }

        return document;
    }

    /// <summary>Blob files are the truth: each must exist with the size its descriptor gives.</summary>
    private void AddBlobs(Walk walk, ManifestDocument manifest, string? platform)
    {
        var suffix = platform is null ? "" : $" of {platform}";
        foreach (var blob in manifest.Blobs)
        {
            var kind = blob == manifest.Config ? "config" : "layer";
            var present = _cache.Store.TryStat(blob.Digest, out var size) && (blob.Size < 0 || size == blob.Size);
            walk.Add(blob.Digest, kind, blob.Size >= 0 ? blob.Size : size, present, platform);
            if (!present)
            {
                _cache.Forget(blob.Digest);
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
