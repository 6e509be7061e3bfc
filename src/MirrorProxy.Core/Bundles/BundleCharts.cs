using MirrorProxy.Cache;
using MirrorProxy.Helm;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Bundles;

internal enum ChartDescription
{
    Found,
    /// <summary>No Helm repository of that name is configured.</summary>
    NoRepository,
    /// <summary>The repository's cached index lists no such version.</summary>
    NotListed,
    /// <summary>The index gives the version no digest: the mirror never caches it.</summary>
    NoDigest,
    /// <summary>The archive is not in the cache (warm it first).</summary>
    NotCached,
}

/// <summary>A chart version as an export carries it, with the URL of the repository it comes from.</summary>
internal sealed record BundleChartSource(string RepositoryUrl, BundleChart Chart);

/// <summary>
/// Everything bundles need from the classic Helm repositories, in one place: what a chart version is on the
/// exporting mirror (for the bundle's manifest), and, on the importing one, which repositories are configured,
/// their origin for the content brought in, and taking a bundle's index, chart versions and provenance files into
/// their documents.
/// </summary>
internal sealed class BundleCharts
{
    private readonly HelmRepositorySet _repositories;
    private readonly HelmIndexService _indexes;
    private readonly HelmChartService _charts;
    private readonly MirrorCache _cache;

    public BundleCharts(HelmRepositorySet repositories, HelmIndexService indexes, HelmChartService charts, MirrorCache cache)
    {
        _repositories = repositories;
        _indexes = indexes;
        _charts = charts;
        _cache = cache;
    }

    public bool IsConfigured(string repository) => _repositories.TryGet(repository, out _);

    /// <summary>The origin content of this repository is kept under (its access rules follow it); null when it is not configured.</summary>
    public ContentOrigin? OriginOf(string repository) => _repositories.TryGet(repository, out var configured) ? configured.Origin : null;

    /// <summary>A cached chart version as a bundle describes it: digest, size, upstream URL, and the provenance file when held.</summary>
    public async Task<(ChartDescription Status, BundleChartSource? Source)> DescribeAsync(string repositoryName, string chart, string version, CancellationToken cancellationToken)
    {
        if (!_repositories.TryGet(repositoryName, out var repository))
        {
            return (ChartDescription.NoRepository, null);
        }

        if ((await _indexes.GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false))?.Find(chart, version) is not { } record)
        {
            return (ChartDescription.NotListed, null);
        }

        if (HelmCatalog.ParseDigest(record.Digest) is not { } digest)
        {
            return (ChartDescription.NoDigest, null);
        }

        if (!await _cache.IsStoredAsync(digest, null, cancellationToken).ConfigureAwait(false)
            || await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is not { } archive)
        {
            return (ChartDescription.NotCached, null);
        }

        string? provenanceDigest = null;
        long? provenanceSize = null;
        if (await _charts.ProvenanceRecordAsync(repository, chart, version, cancellationToken).ConfigureAwait(false) is { } provenance
            && Digest.TryParse(provenance.Digest, out var parsed) && await _cache.IsStoredAsync(parsed, provenance.Size, cancellationToken).ConfigureAwait(false))
        {
            (provenanceDigest, provenanceSize) = (parsed.Value, provenance.Size);
        }

        return (ChartDescription.Found, new BundleChartSource(repository.Options.Url,
            new BundleChart(repository.Name, chart, version, digest.Value, archive.Size, record.Url, provenanceDigest, provenanceSize)));
    }

    /// <summary>
    /// Makes a bundle's charts servable: per repository, its index and chart versions join the repository's
    /// document, and each provenance file is recorded. Their content must be committed before.
    /// </summary>
    public async Task AdoptAsync(BundleManifest manifest, CancellationToken cancellationToken)
    {
        foreach (var carried in manifest.HelmRepositories ?? [])
        {
            if (!_repositories.TryGet(carried.Name, out var repository))
            {
                continue; // refused before anything was staged
            }

            var charts = (manifest.Charts ?? []).Where(c => c.Repository == carried.Name).ToList();
            var index = new HelmIndexRecord(carried.IndexDigest, carried.IndexSize, manifest.Created, ETag: null, LastModified: null);
            Stored(carried.Name, await _indexes.AdoptAsync(repository, index, [.. charts.Select(c => new HelmChartRecord(c.Chart, c.Version, c.Digest, c.Url))], cancellationToken)
                .ConfigureAwait(false));
            foreach (var chart in charts.Where(c => c.ProvenanceDigest is not null))
            {
                Stored(chart.Reference, await _indexes.PutProvenanceRecordAsync(repository, chart.Chart, chart.Version,
                    new HelmProvenanceRecord(chart.ProvenanceDigest!, chart.ProvenanceSize!.Value), cancellationToken).ConfigureAwait(false));
            }
        }

        static void Stored(string what, StorageStatus status)
        {
            if (status is not (StorageStatus.Ok or StorageStatus.AlreadyExists))
            {
                throw new IOException($"the cache could not record {what} ({status}); import the bundle again once the cache can take it");
            }
        }
    }
}
