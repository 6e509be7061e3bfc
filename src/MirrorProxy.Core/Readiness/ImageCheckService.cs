using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Routing;

namespace MirrorProxy.Readiness;

/// <summary>
/// Answers "would this image pull with the network gone?" from the cache alone: the tag (or digest), the
/// manifest, for an index the selected platforms' manifests, and every config and layer blob, each present in
/// full. It never dials an upstream.
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
            return new ImageCheckResult(image, null, ImageStatus.Invalid, [error]);
        }

        var missing = new List<string>();
        if (!_router.TryGetUpstream(reference!.Registry, out var upstream))
        {
            missing.Add($"no upstream is configured for registry {reference.Registry}");
            return Result(image, reference, missing);
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
            missing.Add($"tag {reference.Tag} is not cached");
            return Result(image, reference, missing);
        }

        var manifest = await ReadManifestAsync(top, "manifest", missing, cancellationToken).ConfigureAwait(false);
        if (manifest is null)
        {
            return Result(image, reference, missing);
        }

        if (!manifest.IsIndex)
        {
            CheckBlobs(manifest, null, missing);
            return Result(image, reference, missing);
        }

        var children = platforms.Select(manifest.Manifests, out var absent);
        foreach (var child in children)
        {
            var label = child.Platform?.ToString() ?? child.Digest.Value;
            if (await ReadManifestAsync(child.Digest, $"{label} manifest", missing, cancellationToken).ConfigureAwait(false) is { } platformManifest)
            {
                CheckBlobs(platformManifest, label, missing);
            }
        }

        foreach (var platform in absent)
        {
            missing.Add($"the image has no {platform} manifest");
        }

        return Result(image, reference, missing);
    }

    private async Task<ManifestDocument?> ReadManifestAsync(Digest digest, string what, List<string> missing, CancellationToken cancellationToken)
    {
        var entry = await _cache.TryGetContentAsync(digest).ConfigureAwait(false);
        var content = entry is null ? null : await _cache.ReadContentAsync(digest, cancellationToken).ConfigureAwait(false);
        if (entry is null || content is null || !digest.Matches(content))
        {
            missing.Add($"{what} {digest}");
            return null;
        }

        if (!ManifestDocument.TryParse(content, entry.Value.MediaType ?? ManifestMediaType.Resolve(null, content), out var document))
        {
            missing.Add($"{what} {digest} is not a readable manifest");
            return null;
        }

        return document;
    }

    /// <summary>Blob files are the truth: each must exist with the size its descriptor gives.</summary>
    private void CheckBlobs(ManifestDocument manifest, string? platform, List<string> missing)
    {
        var suffix = platform is null ? "" : $" of {platform}";
        if (manifest.Config is { } config && !IsComplete(config))
        {
            missing.Add($"config {config.Digest}{suffix}");
        }

        foreach (var layer in manifest.Layers.Where(layer => !IsComplete(layer)))
        {
            missing.Add($"layer {layer.Digest}{suffix}");
        }
    }

    private bool IsComplete(Descriptor descriptor) =>
        _cache.Store.TryStat(descriptor.Digest, out var size) && (descriptor.Size < 0 || size == descriptor.Size);

    private static ImageCheckResult Result(string image, ImageReference reference, List<string> missing) =>
        new(image, reference.ToString(), missing.Count == 0 ? ImageStatus.Ok : ImageStatus.Missing, missing);
}
