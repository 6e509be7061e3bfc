using MirrorProxy.Auth;
using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Readiness;

namespace MirrorProxy.Helm;

/// <summary>
/// "Would this chart install with the network gone?" for a chart reference, from the cache alone: the repository's
/// index (which Helm needs to find the chart), the chart's archive under the digest the index gives, and its
/// provenance file when the mirror fetched one. The content listed is what a pin protects and a warm-up fetches;
/// a chart's digest is its archive's. Never dials an upstream.
/// </summary>
internal sealed class HelmChartCheck
{
    private readonly HelmRepositorySet _repositories;
    private readonly HelmIndexService _indexes;
    private readonly HelmChartService _charts;
    private readonly MirrorCache _cache;
    private readonly AccessPolicy _access;

    public HelmChartCheck(HelmRepositorySet repositories, HelmIndexService indexes, HelmChartService charts, MirrorCache cache, AccessPolicy access)
    {
        _repositories = repositories;
        _indexes = indexes;
        _charts = charts;
        _cache = cache;
        _access = access;
    }

    /// <summary>Checks a chart for <paramref name="identity"/>: a chart it may not read is reported missing, with nothing about its content.</summary>
    public async Task<ImageCheckResult> CheckAsync(string text, ClientIdentity identity, CancellationToken cancellationToken)
    {
        if (!ChartReference.TryParse(text, out var reference, out var error))
        {
            return new ImageCheckResult(text, null, ImageStatus.Invalid, [error], [], TagMissing: false);
        }

        if (!_repositories.TryGet(reference!.Repository, out var repository))
        {
            return new ImageCheckResult(text, reference.ToString(), ImageStatus.Invalid, [$"no Helm repository named {reference.Repository} is configured on the mirror"], [], false);
        }

        switch (_access.Decide(identity, repository, reference.Chart))
        {
            case AccessDecision.AuthenticationRequired:
                return new ImageCheckResult(text, reference.ToString(), ImageStatus.Missing, [$"Helm repository {repository.Name} is private: authenticate to check it"], [], false);
            case AccessDecision.Denied:
                return new ImageCheckResult(text, reference.ToString(), ImageStatus.Missing, [$"no Helm repository named {reference.Repository} is configured on the mirror that you may read"], [], false);
        }

        var catalog = await _indexes.GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false);
        if (catalog is null)
        {
            return new ImageCheckResult(text, reference.ToString(), ImageStatus.Missing, [$"the index of {repository.Name} is not cached"], [], TagMissing: true);
        }

        var content = new List<RequiredContent>();
        var problems = new List<string>();
        if (catalog.Index is { } index && Digest.TryParse(index.Digest, out var indexDigest))
        {
            var present = await _cache.IsStoredAsync(indexDigest, index.Size, cancellationToken).ConfigureAwait(false);
            content.Add(new RequiredContent(indexDigest.Value, "index", index.Size, present, null));
            if (!present)
            {
                problems.Add($"the index of {repository.Name} ({indexDigest})");
            }
        }

        var version = reference.Resolve(catalog.Versions(reference.Chart).Select(c => c.Version), out var versionError);
        if (version is null || catalog.Find(reference.Chart, version) is not { } record)
        {
            problems.Add(versionError ?? $"the cached index of {repository.Name} lists no version of {reference.Chart}{(reference.Version is null ? "" : " matching " + reference.Version)}");
            return new ImageCheckResult(text, reference.ToString(), ImageStatus.Missing, problems, content, TagMissing: true);
        }

        var resolved = (reference with { Version = version }).ToString();
        if (HelmCatalog.ParseDigest(record.Digest) is not { } digest)
        {
            problems.Add($"the index gives no digest for {reference.Chart} {version}: the mirror does not cache it");
            return new ImageCheckResult(text, resolved, ImageStatus.Invalid, problems, content, TagMissing: false);
        }

        var entry = await _cache.IsStoredAsync(digest, null, cancellationToken).ConfigureAwait(false) ? await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) : null;
        content.Add(new RequiredContent(digest.Value, "chart", entry?.Size ?? -1, entry is not null, null));
        if (entry is null)
        {
            problems.Add($"chart {reference.Chart} {version} ({digest})");
        }

        if (await _charts.ProvenanceRecordAsync(repository, reference.Chart, version, cancellationToken).ConfigureAwait(false) is { } provenance
            && Digest.TryParse(provenance.Digest, out var provenanceDigest))
        {
            var present = await _cache.IsStoredAsync(provenanceDigest, provenance.Size, cancellationToken).ConfigureAwait(false);
            content.Add(new RequiredContent(provenanceDigest.Value, "provenance", provenance.Size, present, null));
            if (!present)
            {
                problems.Add($"the provenance of chart {reference.Chart} {version} ({provenanceDigest})");
            }
        }

        return new ImageCheckResult(text, resolved, problems.Count == 0 ? ImageStatus.Ok : ImageStatus.Missing, problems, content, TagMissing: false);
    }
}
