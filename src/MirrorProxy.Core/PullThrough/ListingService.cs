using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.Cache;
using MirrorProxy.Common;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

internal enum ListingStatus
{
    /// <summary>The upstream's answer, now.</summary>
    Fetched,
    /// <summary>What the cache has seen, because the upstream could not answer.</summary>
    Stale,
    /// <summary>The upstream says there is no such repository (or no referrers API) and nothing is cached.</summary>
    NotFound,
    /// <summary>The upstream could not answer and nothing is cached.</summary>
    Unavailable,
}

/// <summary>Tags of a repository: the names, and the upstream's own pagination link when it paginated.</summary>
internal readonly record struct TagListResult(ListingStatus Status, IReadOnlyList<string> Tags, string? UpstreamLink)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public TimeSpan? RetryAfter { get; init; }

    public string? Detail { get; init; }
}

/// <summary>A referrers answer: the image index body as the upstream sent it (or as cached).</summary>
internal readonly record struct ReferrersResult(ListingStatus Status, byte[]? Body, string ContentType, string? UpstreamLink, string? FiltersApplied)
{
    public UpstreamOutcome UpstreamOutcome { get; init; }

    public string? Detail { get; init; }
}

/// <summary>
/// Tag lists and referrers: passed through from the upstream, and their last complete answer kept for when it is
/// unreachable (tag lists then also include every tag the cache has resolved). Bodies are bounded in size and
/// time, and must be JSON.
/// </summary>
internal sealed class ListingService
{
    private const string FullTagListName = "tags";

    private readonly MirrorCache _cache;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;

    public ListingService(MirrorCache cache, MirrorMetrics metrics, TimeProvider time)
    {
        _cache = cache;
        _metrics = metrics;
        _time = time;
    }

    public async ValueTask<TagListResult> GetTagsAsync(Route route, string? n, string? last, CancellationToken cancellationToken)
    {
        var query = string.Join('&', new[] { n is null ? null : "n=" + n, last is null ? null : "last=" + Uri.EscapeDataString(last) }.Where(p => p is not null));
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, "tags/list") { Query = query, Accept = MediaTypes.Json }, cancellationToken).ConfigureAwait(false);

        if (response.IsSuccess && await ReadBodyAsync(route, response.Message!, cancellationToken).ConfigureAwait(false) is { } body)
        {
            var link = HeaderValue(response.Message!, "Link");
            if (link is null && last is null)
            {
                // A complete list: kept for answering while the upstream is unreachable.
                await _cache.PutListingAsync(route.Upstream.Name, route.Repository, FullTagListName, body, cancellationToken).ConfigureAwait(false);
            }

            _metrics.Request(RequestKinds.Tags, RequestResults.Miss, route.Upstream.Name);
            return new TagListResult(ListingStatus.Fetched, ReadTags(body), link);
        }

        if (response.Outcome == UpstreamOutcome.NotFound)
        {
            _metrics.Request(RequestKinds.Tags, RequestResults.NotFound, route.Upstream.Name);
            return new TagListResult(ListingStatus.NotFound, [], null) { UpstreamOutcome = response.Outcome, Detail = response.Detail };
        }

        // The upstream cannot answer: every tag the cache has seen for this repository.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var tag in _cache.ListTagsAsync(route.Upstream.Name, route.Repository, cancellationToken).ConfigureAwait(false))
        {
            seen.Add(tag);
        }

        if (await _cache.ReadListingAsync(route.Upstream.Name, route.Repository, FullTagListName, cancellationToken).ConfigureAwait(false) is { } full)
        {
            seen.UnionWith(ReadTags(full));
        }

        var outcome = response.IsSuccess ? UpstreamOutcome.Failed : response.Outcome;
        if (seen.Count == 0)
        {
            _metrics.Request(RequestKinds.Tags, RequestResults.Error, route.Upstream.Name);
            return new TagListResult(ListingStatus.Unavailable, [], null) { UpstreamOutcome = outcome, RetryAfter = response.RetryAfter, Detail = response.Detail };
        }

        _metrics.Request(RequestKinds.Tags, RequestResults.Stale, route.Upstream.Name);
        return new TagListResult(ListingStatus.Stale, [.. seen], null) { UpstreamOutcome = outcome, Detail = response.Detail };
    }

    /// <summary>
    /// Referrers pass through from the upstream and their last answer is kept for when it is unreachable. NotFound
    /// (an upstream without the API, or nothing cached while it is down) tells clients to fall back to the
    /// referrers tag schema, which the cache may hold.
    /// </summary>
    public async ValueTask<ReferrersResult> GetReferrersAsync(Route route, Digest digest, string? artifactType, CancellationToken cancellationToken)
    {
        var name = "referrers-" + digest.Encoded.ToString()
            + (artifactType is null ? "" : "-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(artifactType)))[..16]);
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, "referrers/" + digest.Value)
            {
                Query = artifactType is null ? null : "artifactType=" + Uri.EscapeDataString(artifactType),
                Accept = MediaTypes.OciIndex + ", " + MediaTypes.Json,
            },
            cancellationToken).ConfigureAwait(false);

        if (response.IsSuccess && await ReadBodyAsync(route, response.Message!, cancellationToken).ConfigureAwait(false) is { } body)
        {
            await _cache.PutListingAsync(route.Upstream.Name, route.Repository, name, body, cancellationToken).ConfigureAwait(false);
            _metrics.Request(RequestKinds.Referrers, RequestResults.Miss, route.Upstream.Name);
            var contentType = MediaTypes.StripParameters(response.Message!.Content.Headers.ContentType?.ToString()) ?? MediaTypes.OciIndex;
            return new ReferrersResult(ListingStatus.Fetched, body, contentType, HeaderValue(response.Message, "Link"), HeaderValue(response.Message, "OCI-Filters-Applied"));
        }

        if (response.Outcome != UpstreamOutcome.NotFound
            && await _cache.ReadListingAsync(route.Upstream.Name, route.Repository, name, cancellationToken).ConfigureAwait(false) is { } cached)
        {
            _metrics.Request(RequestKinds.Referrers, RequestResults.Stale, route.Upstream.Name);
            return new ReferrersResult(ListingStatus.Stale, cached, MediaTypes.OciIndex, null, artifactType is null ? null : "artifactType")
            {
                UpstreamOutcome = response.Outcome,
                Detail = response.Detail,
            };
        }

        _metrics.Request(RequestKinds.Referrers, RequestResults.NotFound, route.Upstream.Name);
        var status = response.Outcome == UpstreamOutcome.NotFound ? ListingStatus.NotFound : ListingStatus.Unavailable;
        return new ReferrersResult(status, null, MediaTypes.OciIndex, null, null) { UpstreamOutcome = response.Outcome, Detail = response.Detail };
    }

    /// <summary>Reads a listing body of bounded size within the upstream's request timeout; null when it is too large, too slow, broken off, or not JSON.</summary>
    private async Task<byte[]?> ReadBodyAsync(Route route, HttpResponseMessage message, CancellationToken cancellationToken)
    {
        if (message.Content.Headers.ContentLength > MirrorCache.MaxListingSize)
        {
            return null;
        }

        using var timeout = new CancellationTokenSource(route.Upstream.Options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            await using var stream = await message.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            await new LimitedStream(stream, MirrorCache.MaxListingSize).CopyToAsync(buffer, 16 * 1024, linked.Token).ConfigureAwait(false);
            var body = buffer.ToArray();
            using (JsonDocument.Parse(body))
            {
            }

            return body;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException
            || (ex is OperationCanceledException && timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested))
        {
            await route.Upstream.ReportBodyFailureAsync(transport: true, "a listing body stalled or broke off").ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            return null;
        }
    }

    internal static List<string> ReadTags(ReadOnlySpan<byte> body)
    {
        var tags = new List<string>();
        try
        {
            var reader = new Utf8JsonReader(body);
            using var document = JsonDocument.ParseValue(ref reader);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("tags", out var array) && array.ValueKind == JsonValueKind.Array)
            {
                foreach (var tag in array.EnumerateArray())
                {
                    if (tag.ValueKind == JsonValueKind.String && tag.GetString() is { } value && OciNames.IsValidTag(value))
                    {
                        tags.Add(value);
                    }
                }
            }
        }
        catch (JsonException)
        {
            // A damaged cached listing counts as empty.
        }

        return tags;
    }

    private static string? HeaderValue(HttpResponseMessage message, string name) =>
        message.Headers.NonValidated.TryGetValues(name, out var values) ? values.ToString() : null;
}
