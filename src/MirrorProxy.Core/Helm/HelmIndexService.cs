using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.Helm;

internal enum HelmIndexStatus
{
    /// <summary>The stored index, fresh.</summary>
    Hit,
    /// <summary>The stored index, confirmed by the upstream (304) now.</summary>
    Revalidated,
    /// <summary>A new index, fetched and rewritten now.</summary>
    Fetched,
    /// <summary>The stored index, because the upstream could not give one.</summary>
    Stale,
    /// <summary>The upstream has no index there, and nothing is stored.</summary>
    NotFound,
    /// <summary>The upstream could not answer, and nothing is stored.</summary>
    Unavailable,
    /// <summary>The upstream answered with something that is not an index, and nothing is stored.</summary>
    Invalid,
}

/// <summary>An index answer: the catalog it belongs to, and the bytes when they are not (or not yet) in the cache.</summary>
internal readonly record struct HelmIndexResult(HelmIndexStatus Status, HelmCatalog? Catalog, byte[]? Content)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public string? Detail { get; init; }

    public bool Found => Status is HelmIndexStatus.Hit or HelmIndexStatus.Revalidated or HelmIndexStatus.Fetched or HelmIndexStatus.Stale;
}

/// <summary>
/// A repository's index: fetched from the upstream (conditionally, with its ETag), every chart URL rewritten to
/// the mirror (<c>charts/CHART/VERSION/FILE</c>, relative to <c>/helm/NAME/</c>) and the upstream's URL remembered
/// for each chart version in the repository's document; the rewritten text is stored as content by digest. Fresh
/// for the repository's <c>IndexTtl</c>; served stale (its last copy) while the upstream cannot answer. One refresh
/// per repository at a time, whatever the number of clients asking.
/// </summary>
internal sealed partial class HelmIndexService
{
    /// <summary>The largest index taken (read into memory to be rewritten). The largest public ones are some tens of MB.</summary>
    public const int MaxIndexSize = 64 * 1024 * 1024;

    private const int MaxDocumentSize = 256 * 1024 * 1024;

    private readonly ConcurrentDictionary<string, HelmCatalog> _catalogs = new(StringComparer.Ordinal);
    private readonly SingleFlight<HelmCatalog?> _loads = new();
    private readonly SingleFlight<HelmIndexResult> _refreshes = new();
    private readonly MirrorCache _cache;
    private readonly TimeProvider _time;
    private readonly ILogger<HelmIndexService> _logger;
    private readonly CancellationToken _stopping;

    public HelmIndexService(MirrorCache cache, TimeProvider time, BackgroundWork background, IOptions<HelmOptions> options, ILogger<HelmIndexService> logger)
    {
        _cache = cache;
        _time = time;
        _logger = logger;
        _stopping = background.Stopping;
        OfflineIndex = options.Value.HelmOfflineIndex;
    }

    public HelmOfflineIndex OfflineIndex { get; }

    public static string DocumentKey(string repository) => "helm/" + repository + ".json";

    public static string ProvenanceKey(string repository, string chart, string version) => $"helm/{repository}/provenance/{chart}/{version}";

    /// <summary>The repository's catalog as last stored (no upstream request); null before its index was ever fetched.</summary>
    public async ValueTask<HelmCatalog?> GetCatalogAsync(HelmRepository repository, CancellationToken cancellationToken)
    {
        if (_catalogs.TryGetValue(repository.Name, out var catalog))
        {
            return catalog;
        }

        return await _loads.RunAsync(repository.Name, static s => s.Self.LoadAsync(s.Repository), (Self: this, Repository: repository), cancellationToken).ConfigureAwait(false);
    }

    private async Task<HelmCatalog?> LoadAsync(HelmRepository repository)
    {
        if (_catalogs.TryGetValue(repository.Name, out var loaded))
        {
            return loaded;
        }

        var document = await _cache.Metadata.ReadAsync(DocumentKey(repository.Name), MaxDocumentSize, _stopping).ConfigureAwait(false);
        if (document is null)
        {
            return null;
        }

        try
        {
            if (JsonSerializer.Deserialize(document, HelmJsonContext.Default.HelmRepositoryDocument) is not { } parsed)
            {
                return null;
            }

            // Written when the index was fetched; a restart makes it due for revalidation at once.
            var catalog = new HelmCatalog(parsed, DateTimeOffset.MinValue);
            return _catalogs.GetOrAdd(repository.Name, catalog);
        }
        catch (JsonException ex)
        {
            Log.DocumentUnreadable(_logger, repository.Name, ex.Message);
            return null;
        }
    }

    /// <summary>The index to serve now: the stored one while fresh, else the upstream's (revalidated or new), else the stored one stale.</summary>
    public async ValueTask<HelmIndexResult> GetIndexAsync(HelmRepository repository, CancellationToken cancellationToken)
    {
        var catalog = await GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false);
        if (catalog is not null && catalog.Document.Url == repository.Options.Url && _time.GetUtcNow() - catalog.CheckedAt < repository.Options.IndexTtl
            && await IsStoredAsync(catalog, cancellationToken).ConfigureAwait(false))
        {
            return new HelmIndexResult(HelmIndexStatus.Hit, catalog, null);
        }

        if (catalog is not null && !repository.Resilience.IsAvailable && await IsStoredAsync(catalog, cancellationToken).ConfigureAwait(false))
        {
            // Marked down or offline: the last index now, without dialing.
            return new HelmIndexResult(HelmIndexStatus.Stale, catalog, null)
            {
                UpstreamOutcome = UpstreamOutcome.Skipped, Detail = repository.Resilience.Down?.Reason ?? "the mirror is offline",
            };
        }

        return await RefreshAsync(repository, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Asks the upstream for the index now (one request per repository at a time).</summary>
    public Task<HelmIndexResult> RefreshAsync(HelmRepository repository, CancellationToken cancellationToken) =>
        _refreshes.RunAsync(repository.Name, static s => s.Self.FetchAsync(s.Repository), (Self: this, Repository: repository), cancellationToken);

    /// <summary>Whether the catalog's index text is in the cache (it is content, so it can be evicted or quarantined).</summary>
    public async ValueTask<bool> IsStoredAsync(HelmCatalog catalog, CancellationToken cancellationToken) =>
        catalog.Index is { } index && Digest.TryParse(index.Digest, out var digest) && await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is not null;

    private async Task<HelmIndexResult> FetchAsync(HelmRepository repository)
    {
        var stopping = _stopping;
        var catalog = await GetCatalogAsync(repository, stopping).ConfigureAwait(false);
        var stored = catalog is not null && await IsStoredAsync(catalog, stopping).ConfigureAwait(false);
        var conditional = stored && catalog!.Document.Url == repository.Options.Url;
        EntityTagHeaderValue? etag = null;
        if (conditional && catalog!.Index!.ETag is { } text && !EntityTagHeaderValue.TryParse(text, out etag))
        {
            etag = null;
        }

        using var response = await repository.SendAsync(HttpMethod.Get, repository.IndexUrl, null, etag, conditional ? catalog!.Index!.LastModified : null, isBlob: false, stopping)
            .ConfigureAwait(false);
        var outcome = response.Outcome;
        var detail = response.Detail;
        if (response.IsSuccess && (int)response.Message!.StatusCode == 304 && conditional)
        {
            catalog!.CheckedAt = _time.GetUtcNow();
            return new HelmIndexResult(HelmIndexStatus.Revalidated, catalog, null);
        }

        if (response.IsSuccess && (int)response.Message!.StatusCode == 200)
        {
            var body = await ReadBodyAsync(repository, response.Message, stopping).ConfigureAwait(false);
            if (body is null)
            {
                outcome = UpstreamOutcome.Unreachable;
                detail = "the index body stalled, broke off or is larger than " + MaxIndexSize + " bytes";
            }
            else
            {
                var started = _time.GetTimestamp();
                var (status, rewritten, charts) = Rewrite(repository, body);
                if (status == IndexScanStatus.Ok)
                {
                    Log.IndexFetched(_logger, repository.Name, charts.Count, body.Length, _time.GetElapsedTime(started).TotalMilliseconds);
                    var fresh = await StoreAsync(repository, response.Message, rewritten, charts, stopping).ConfigureAwait(false);
                    return new HelmIndexResult(HelmIndexStatus.Fetched, fresh, rewritten);
                }

                Log.IndexUnusable(_logger, repository.Name, status);
                await repository.Resilience.ReportBodyFailureAsync(transport: false, "an index that is not one: " + status).ConfigureAwait(false);
                outcome = UpstreamOutcome.Failed;
                detail = $"the upstream's index.yaml is not a chart index ({status})";
            }
        }

        if (stored)
        {
            return new HelmIndexResult(HelmIndexStatus.Stale, catalog, null) { UpstreamOutcome = outcome, Detail = detail };
        }

        var failure = outcome switch
        {
            UpstreamOutcome.NotFound => HelmIndexStatus.NotFound,
            UpstreamOutcome.Failed => HelmIndexStatus.Invalid,
            _ => HelmIndexStatus.Unavailable,
        };
        return new HelmIndexResult(failure, null, null) { UpstreamOutcome = outcome, RetryAfter = response.RetryAfter, Detail = detail };
    }

    /// <summary>Stores the rewritten index as content, then the document naming it; the catalog in memory follows.</summary>
    private async Task<HelmCatalog> StoreAsync(HelmRepository repository, HttpResponseMessage response, byte[] rewritten, List<HelmChartRecord> charts, CancellationToken cancellationToken)
    {
        var digest = Digest.FromSha256Hash(SHA256.HashData(rewritten));
        var now = _time.GetUtcNow();
        var record = new HelmIndexRecord(digest.Value, rewritten.Length, now, response.Headers.ETag?.ToString(), response.Content.Headers.LastModified);
        var document = new HelmRepositoryDocument(repository.Options.Url, record, charts);
        var catalog = new HelmCatalog(document, now);
        var status = await PutContentAsync(digest, rewritten, repository.Origin, cancellationToken).ConfigureAwait(false);
        if (status is StorageStatus.Ok or StorageStatus.AlreadyExists)
        {
            status = await WriteDocumentAsync(repository, document, cancellationToken).ConfigureAwait(false);
        }

        if (status is not (StorageStatus.Ok or StorageStatus.AlreadyExists))
        {
            // Served from memory this time, and used until a restart; the cache's health reports the disk.
            Log.IndexNotStored(_logger, repository.Name, status);
        }

        _catalogs[repository.Name] = catalog;
        return catalog;
    }

    /// <summary>
    /// Takes in an index and chart versions that a bundle brought (their content is already in the cache): the
    /// repository's document keeps its own index when that one is newer and still stored, else takes the bundle's;
    /// the bundle's chart versions join those it lists. The catalog becomes due for revalidation, so a repository
    /// the mirror can reach replaces the bundle's index at the next request; one it cannot reach serves it stale
    /// (all of it, or with <c>HelmOfflineIndex: Held</c> the chart versions held).
    /// </summary>
    public async ValueTask<StorageStatus> AdoptAsync(HelmRepository repository, HelmIndexRecord index, IReadOnlyList<HelmChartRecord> charts, CancellationToken cancellationToken)
    {
        var current = await GetCatalogAsync(repository, cancellationToken).ConfigureAwait(false);
        var keepIndex = current?.Index is { } own && own.FetchedAt >= index.FetchedAt && await IsStoredAsync(current, cancellationToken).ConfigureAwait(false);
        var records = new Dictionary<(string, string), HelmChartRecord>();
        foreach (var chart in (current?.Document.Charts ?? []).Concat(charts))
        {
            records[(chart.Name, chart.Version)] = chart;
        }

        var document = new HelmRepositoryDocument(keepIndex ? current!.Document.Url : repository.Options.Url, keepIndex ? current!.Index : index, [.. records.Values]);
        var status = await WriteDocumentAsync(repository, document, cancellationToken).ConfigureAwait(false);
        if (status == StorageStatus.Ok)
        {
            _catalogs[repository.Name] = new HelmCatalog(document, keepIndex ? current!.CheckedAt : DateTimeOffset.MinValue);
        }

        return status;
    }

    private ValueTask<StorageStatus> WriteDocumentAsync(HelmRepository repository, HelmRepositoryDocument document, CancellationToken cancellationToken) =>
        _cache.Metadata.WriteAsync(DocumentKey(repository.Name), JsonSerializer.SerializeToUtf8Bytes(document, HelmJsonContext.Default.HelmRepositoryDocument), cancellationToken);

    /// <summary>Records the provenance file of a chart version, stored by its digest.</summary>
    public ValueTask<StorageStatus> PutProvenanceRecordAsync(HelmRepository repository, string chart, string version, HelmProvenanceRecord record, CancellationToken cancellationToken) =>
        _cache.Metadata.WriteAsync(ProvenanceKey(repository.Name, chart, version), JsonSerializer.SerializeToUtf8Bytes(record, HelmJsonContext.Default.HelmProvenanceRecord), cancellationToken);

    /// <summary>Stores small verified content (an index, a provenance file) by its digest, as brought in by <paramref name="origin"/>.</summary>
    public async ValueTask<StorageStatus> PutContentAsync(Digest digest, byte[] content, ContentOrigin origin, CancellationToken cancellationToken)
    {
        var (status, writer) = await _cache.BeginWriteAsync(digest, content.Length, cancellationToken).ConfigureAwait(false);
        if (writer is null)
        {
            return status;
        }

        await using (writer.ConfigureAwait(false))
        {
            status = await writer.WriteAsync(content, cancellationToken).ConfigureAwait(false);
            return status == StorageStatus.Ok ? await _cache.CommitAsync(writer, mediaType: null, origin, cancellationToken).ConfigureAwait(false) : status;
        }
    }

    /// <summary>
    /// The index as offline clients get it with <c>HelmOfflineIndex: Held</c>: only the chart versions whose archive
    /// the cache holds and may serve through this repository (not a copy only another private repository brought in).
    /// Null when the stored index cannot be read.
    /// </summary>
    public async ValueTask<byte[]?> HeldIndexAsync(HelmRepository repository, HelmCatalog catalog, CancellationToken cancellationToken)
    {
        var held = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chart in catalog.Document.Charts)
        {
            if (HelmCatalog.ParseDigest(chart.Digest) is { } digest && await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is { } stored
                && BlobService.IsVisible(await _cache.ResolveAsync(digest, stored, cancellationToken).ConfigureAwait(false), repository.Origin.Name))
            {
                held.Add(chart.Name + "\n" + chart.Version);
            }
        }

        if (catalog.Index is not { } index || !Digest.TryParse(index.Digest, out var indexDigest)
            || await _cache.LookupAsync(indexDigest, cancellationToken).ConfigureAwait(false) is not { Size: <= MaxIndexSize } entry)
        {
            return null;
        }

        var (status, content) = await _cache.ReadSmallAsync(indexDigest, entry, cancellationToken).ConfigureAwait(false);
        if (status != CachedContentStatus.Ok)
        {
            return null;
        }

        return await Task.Run(() =>
        {
            using var input = new StreamReader(new MemoryStream(content!), Encoding.UTF8);
            using var output = new MemoryStream(content!.Length);
            using (var writer = new StreamWriter(output, new UTF8Encoding(false), 64 * 1024, leaveOpen: true))
            {
                if (HelmIndexFilter.Filter(input, writer, (chart, version, _) => version is not null && held.Contains(chart + "\n" + version)) != IndexScanStatus.Ok)
                {
                    return null;
                }
            }

            return output.ToArray();
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the body, bounded in size and in time without progress; null when it stalls, breaks off or is too large.</summary>
    private async Task<byte[]?> ReadBodyAsync(HelmRepository repository, HttpResponseMessage message, CancellationToken cancellationToken)
    {
        if (message.Content.Headers.ContentLength > MaxIndexSize)
        {
            return null;
        }

        var idleTimeout = repository.UpstreamOptions.BlobIdleTimeout;
        using var idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            await using var stream = await message.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var body = new MemoryStream((int)Math.Min(message.Content.Headers.ContentLength ?? 64 * 1024, MaxIndexSize));
            while (true)
            {
                idle.CancelAfter(idleTimeout);
                var read = await stream.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return body.ToArray();
                }

                if (body.Length + read > MaxIndexSize)
                {
                    return null;
                }

                body.Write(buffer, 0, read);
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested))
        {
            await repository.Resilience.ReportBodyFailureAsync(transport: true, "an index body stalled or broke off").ConfigureAwait(false);
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The index with every chart version's URLs pointing at the mirror, and the chart versions it lists.</summary>
    internal static (IndexScanStatus Status, byte[] Rewritten, List<HelmChartRecord> Charts) Rewrite(HelmRepository repository, byte[] body)
    {
        var charts = new List<HelmChartRecord>();
        using var input = new StreamReader(new MemoryStream(body), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        using var output = new MemoryStream(body.Length + body.Length / 8);
        IndexScanStatus status;
        using (var writer = new StreamWriter(output, new UTF8Encoding(false), 64 * 1024, leaveOpen: true))
        {
            status = HelmIndexScanner.Scan(input, writer, entry =>
            {
                if (!HelmNames.IsValidChartName(entry.Chart) || entry.Version is not { } version || !HelmNames.IsValidVersion(version)
                    || entry.Urls.Count == 0 || repository.Resolve(entry.Urls[0].Value) is not { } original)
                {
                    return null;
                }

                charts.Add(new HelmChartRecord(entry.Chart, version, HelmCatalog.ParseDigest(entry.Digest)?.Value, original.AbsoluteUri));
                return MirrorPath(entry.Chart, version, original);
            });
        }

        return (status, output.ToArray(), charts);
    }

    /// <summary>
    /// Where the mirror serves a chart version, relative to the repository's URL on the mirror (Helm resolves it
    /// against the URL it was given, as Nexus's rewritten indexes rely on): <c>charts/CHART/VERSION/FILE</c>, FILE
    /// being the upstream's file name (what <c>helm pull</c> saves it as).
    /// </summary>
    internal static string MirrorPath(string chart, string version, Uri original)
    {
        var file = Uri.UnescapeDataString(original.Segments.Length > 0 ? original.Segments[^1] : "");
        if (file.Length is 0 or > 255 || file is "." or ".." || !file.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+'))
        {
            file = $"{chart}-{version}.tgz";
        }

        return $"charts/{chart}/{version}/{file}";
    }

    private static partial class Log
    {
        [LoggerMessage(10002, LogLevel.Information, "Fetched the index of Helm repository {Repository}: {Charts} chart versions, {Bytes} bytes, rewritten in {ElapsedMs:0} ms")]
        public static partial void IndexFetched(ILogger logger, string repository, int charts, int bytes, double elapsedMs);

        [LoggerMessage(10003, LogLevel.Warning, "The index of Helm repository {Repository} is not usable ({Status}); the last one stays in service")]
        public static partial void IndexUnusable(ILogger logger, string repository, IndexScanStatus status);

        [LoggerMessage(10004, LogLevel.Error, "The index of Helm repository {Repository} could not be stored ({Status}); it is served from memory until the next start")]
        public static partial void IndexNotStored(ILogger logger, string repository, StorageStatus status);

        [LoggerMessage(10005, LogLevel.Error, "The document of Helm repository {Repository} cannot be read ({Reason}); its index will be fetched again")]
        public static partial void DocumentUnreadable(ILogger logger, string repository, string reason);
    }
}
