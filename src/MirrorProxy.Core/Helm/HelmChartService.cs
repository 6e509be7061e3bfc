using System.Text.Json;
using Microsoft.Extensions.Logging;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.Helm;

internal enum HelmChartStatus
{
    /// <summary>A body to send (from the cache, a download in progress, or a relay): see the blob result.</summary>
    Found,
    /// <summary>The repository's index does not list this chart version (or the upstream has no such file).</summary>
    NotFound,
    /// <summary>The index gives no digest for it: the mirror serves only what it can verify.</summary>
    NoDigest,
    /// <summary>The upstream cannot answer and the file is not cached.</summary>
    Unavailable,
    /// <summary>The upstream gave something unusable (a provenance file that does not name the chart's digest, say).</summary>
    Invalid,
}

/// <summary>A chart file answer: the blob answer with the body, or why there is none.</summary>
internal readonly record struct HelmChartResult(HelmChartStatus Status, BlobResult Blob)
{
    public string? Detail { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public Digest Digest { get; init; }
}

/// <summary>
/// Chart archives and their provenance files, by the chart version the mirror's index names. An archive is a blob
/// of the content store under the digest the upstream index gives: it comes from the cache when held, else from
/// one shared upstream download that is verified against that digest before it is stored or its last byte is
/// sent (the blob service's; nothing here downloads on its own). A provenance file has no digest in the index: it is
/// fetched whole (it is small), must name the archive's digest, and is then stored under its own.
/// </summary>
internal sealed partial class HelmChartService
{
    public const int MaxProvenanceSize = 256 * 1024;

    private readonly HelmIndexService _indexes;
    private readonly BlobService _blobs;
    private readonly MirrorCache _cache;
    private readonly SingleFlight<HelmChartResult> _provenance = new();
    private readonly ILogger<HelmChartService> _logger;
    private readonly CancellationToken _stopping;

    public HelmChartService(HelmIndexService indexes, BlobService blobs, MirrorCache cache, BackgroundWork background, ILogger<HelmChartService> logger)
    {
        _indexes = indexes;
        _blobs = blobs;
        _cache = cache;
        _logger = logger;
        _stopping = background.Stopping;
    }

    /// <summary>
    /// The chart version's record: from the catalog, or, when it lists no such version and is not fresh, from the
    /// index fetched again (a chart released since). Null when no index lists it.
    /// </summary>
    public async ValueTask<(HelmChartRecord? Record, HelmIndexResult? Refresh)> FindAsync(HelmRepository repository, string chart, string version, CancellationToken cancellationToken)
    {
        var catalog = await _indexes.GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false);
        if (catalog?.Find(chart, version) is { } record)
        {
            return (record, null);
        }

        var refresh = await _indexes.GetIndexAsync(repository, cancellationToken).ConfigureAwait(false);
        return (refresh.Catalog?.Find(chart, version), refresh);
    }

    public async ValueTask<HelmChartResult> GetChartAsync(HelmRepository repository, string chart, string version, bool headOnly, CancellationToken cancellationToken)
    {
        var (record, refresh) = await FindAsync(repository, chart, version, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return NotListed(refresh);
        }

        if (HelmCatalog.ParseDigest(record.Digest) is not { } digest)
        {
            return new HelmChartResult(HelmChartStatus.NoDigest, default) { Detail = $"the index of {repository.Name} gives no digest for {chart} {version}" };
        }

        var url = repository.Resolve(record.Url)!;
        var blob = await _blobs.GetAsync(repository.ChartOrigin(url, $"{chart}@{version}"), digest, headOnly, cancellationToken).ConfigureAwait(false);
        if (blob.Found)
        {
            return new HelmChartResult(HelmChartStatus.Found, blob) { Digest = digest };
        }

        return new HelmChartResult(blob.Status switch
        {
            BlobStatus.NotFound => HelmChartStatus.NotFound,
            BlobStatus.Unusable => HelmChartStatus.Invalid,
            _ => HelmChartStatus.Unavailable,
        }, blob) { Detail = blob.Detail, RetryAfter = blob.RetryAfter, Digest = digest };
    }

    /// <summary>The provenance file of a chart version: from the cache when it was fetched before, else from the upstream (once per version at a time).</summary>
    public async ValueTask<HelmChartResult> GetProvenanceAsync(HelmRepository repository, string chart, string version, CancellationToken cancellationToken)
    {
        if (await CachedProvenanceAsync(repository, chart, version, cancellationToken).ConfigureAwait(false) is { } cached)
        {
            return cached;
        }

        var (record, refresh) = await FindAsync(repository, chart, version, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return NotListed(refresh);
        }

        return await _provenance.RunAsync($"{repository.Name}/{chart}/{version}", static s => s.Self.FetchProvenanceAsync(s.Repository, s.Record),
            (Self: this, Repository: repository, Record: record), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The digest of the provenance file of a chart version when the mirror holds it (for checks and pins); null when it never fetched one.</summary>
    public async ValueTask<HelmProvenanceRecord?> ProvenanceRecordAsync(HelmRepository repository, string chart, string version, CancellationToken cancellationToken)
    {
        var document = await _cache.Metadata.ReadAsync(HelmIndexService.ProvenanceKey(repository.Name, chart, version), 4096, cancellationToken).ConfigureAwait(false);
        try
        {
            return document is null ? null : JsonSerializer.Deserialize(document, HelmJsonContext.Default.HelmProvenanceRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private async ValueTask<HelmChartResult?> CachedProvenanceAsync(HelmRepository repository, string chart, string version, CancellationToken cancellationToken)
    {
        if (await ProvenanceRecordAsync(repository, chart, version, cancellationToken).ConfigureAwait(false) is not { } record || !Digest.TryParse(record.Digest, out var digest))
        {
            return null;
        }

        // Through this repository's route: a copy another private repository brought in is served once this one shows it holds it too.
        if ((await _indexes.GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false))?.Find(chart, version) is not { } chartRecord)
        {
            return null;
        }

        var blob = await _blobs.GetCachedAsync(repository.ChartOrigin(ProvenanceUrl(repository, chartRecord), $"{chart}@{version}.prov"), digest, cancellationToken).ConfigureAwait(false);
        return blob is { Found: true } found ? new HelmChartResult(HelmChartStatus.Found, found) { Digest = digest } : null;
    }

    /// <summary>The provenance file's URL: the chart's URL with <c>.prov</c> appended to its path (a signed URL's query kept).</summary>
    private static Uri ProvenanceUrl(HelmRepository repository, HelmChartRecord record)
    {
        var chart = repository.Resolve(record.Url)!;
        return new Uri(chart.GetLeftPart(UriPartial.Path) + ".prov" + chart.Query);
    }

    private async Task<HelmChartResult> FetchProvenanceAsync(HelmRepository repository, HelmChartRecord record)
    {
        var stopping = _stopping;
        using var response = await repository.SendAsync(HttpMethod.Get, ProvenanceUrl(repository, record), HelmMediaTypes.ChartAccept, null, null, isBlob: false, stopping).ConfigureAwait(false);
        if (!response.IsSuccess || (int)response.Message!.StatusCode != 200)
        {
            var status = response.Outcome switch
            {
                UpstreamOutcome.NotFound => HelmChartStatus.NotFound,
                UpstreamOutcome.Failed => HelmChartStatus.Invalid,
                _ => HelmChartStatus.Unavailable,
            };
            return new HelmChartResult(status, default) { Detail = response.Detail ?? "the chart version has no provenance file", RetryAfter = response.RetryAfter };
        }

        byte[] content;
        try
        {
            await using var body = await response.Message.Content.ReadAsStreamAsync(stopping).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            using var timeout = new CancellationTokenSource(repository.UpstreamOptions.BlobIdleTimeout);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeout.Token);
            await new LimitedStream(body, MaxProvenanceSize).CopyToAsync(buffer, 16 * 1024, linked.Token).ConfigureAwait(false);
            content = buffer.ToArray();
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidDataException || (ex is OperationCanceledException && !stopping.IsCancellationRequested))
        {
            return new HelmChartResult(HelmChartStatus.Unavailable, default) { Detail = "the provenance file broke off, stalled or is larger than " + MaxProvenanceSize + " bytes" };
        }

        // A provenance file signs the archive's sha256; one that names another archive is not this chart's.
        if (HelmCatalog.ParseDigest(record.Digest) is { } chartDigest && !System.Text.Encoding.UTF8.GetString(content).Contains(chartDigest.Value, StringComparison.Ordinal))
        {
            Log.ProvenanceMismatch(_logger, repository.Name, record.Name, record.Version);
            await repository.Resilience.ReportBodyFailureAsync(transport: false, "a provenance file that does not name its chart's digest").ConfigureAwait(false);
            return new HelmChartResult(HelmChartStatus.Invalid, default) { Detail = "the provenance file does not name the chart archive's digest from the index" };
        }

        var digest = Digest.FromSha256Hash(System.Security.Cryptography.SHA256.HashData(content));
        var stored = await _indexes.PutContentAsync(digest, content, repository.Origin, stopping).ConfigureAwait(false);
        if (stored is StorageStatus.Ok or StorageStatus.AlreadyExists)
        {
            await _indexes.PutProvenanceRecordAsync(repository, record.Name, record.Version, new HelmProvenanceRecord(digest.Value, content.Length), stopping).ConfigureAwait(false);
        }

        return new HelmChartResult(HelmChartStatus.Found, new BlobResult(BlobStatus.Started, new MemoryBlobBody(content), content.Length)) { Digest = digest };
    }

    private static HelmChartResult NotListed(HelmIndexResult? refresh) => refresh is { Found: false, Status: not HelmIndexStatus.NotFound } failed
        ? new HelmChartResult(HelmChartStatus.Unavailable, default) { Detail = failed.Detail ?? "the repository's index cannot be fetched", RetryAfter = failed.RetryAfter }
        : new HelmChartResult(HelmChartStatus.NotFound, default) { Detail = "the repository's index lists no such chart version" };

    private static partial class Log
    {
        [LoggerMessage(10006, LogLevel.Warning, "The provenance file of {Chart} {Version} from Helm repository {Repository} does not name the archive's digest: not served, not kept")]
        public static partial void ProvenanceMismatch(ILogger logger, string repository, string chart, string version);
    }
}
