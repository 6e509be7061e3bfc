using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
    private const int MaxListingSize = 4 * 1024 * 1024;
    private const string FullTagListKey = "tags";

    private async Task HandleTagsListAsync(HttpContext context, Route route, string clientName)
    {
        var query = context.Request.Query;
        string? n = query["n"];
        string? last = query["last"];
        int? limit = null;
        if (n is not null)
        {
            if (!int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                await new OciError(StatusCodes.Status400BadRequest, OciErrorCode.PaginationNumberInvalid, "n must be a non-negative integer", n).WriteAsync(context).ConfigureAwait(false);
                return;
            }

            limit = parsed;
        }

        if (last is not null && !OciNames.IsValidTag(last))
        {
            await new OciError(StatusCodes.Status400BadRequest, OciErrorCode.TagInvalid, "last must be a tag", last).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (limit == 0)
        {
            // The spec: n=0 is an empty list without a Link header.
            await WriteJsonAsync(context, TagsPage.Write(clientName, []), MediaTypes.Json, null).ConfigureAwait(false);
            return;
        }

        var upstreamQuery = string.Join('&', new[] { n is null ? null : "n=" + n, last is null ? null : "last=" + last }.Where(p => p is not null));
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, "tags/list") { Query = upstreamQuery, Accept = MediaTypes.Json }, context.RequestAborted).ConfigureAwait(false);

        if (response.IsSuccess && await TryReadListingAsync(response.Message!, route.Upstream.Options.RequestTimeout, context.RequestAborted).ConfigureAwait(false) is { } upstreamBody)
        {
            var upstreamLink = UpstreamLink(response.Message!, clientName, route);
            var (body, link) = TagsPage.Paginate(TagsPage.ReadTags(upstreamBody), clientName, limit, last, upstreamLink, route.Namespace);
            if (upstreamLink is null && last is null)
            {
                // A complete list: kept for answering while the upstream is unreachable.
                await _cache.PutListingAsync(route.Upstream.Name, route.Repository, FullTagListKey, upstreamBody, context.RequestAborted).ConfigureAwait(false);
            }

            _metrics.Request(RequestKinds.Tags, RequestResults.Miss, route.Upstream.Name);
            await WriteJsonAsync(context, body, MediaTypes.Json, link).ConfigureAwait(false);
            return;
        }

        if (response.Outcome == UpstreamOutcome.NotFound)
        {
            _metrics.Request(RequestKinds.Tags, RequestResults.NotFound, route.Upstream.Name);
            await new OciError(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "repository name not known to registry", route.Repository).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        // The upstream cannot answer: every tag the cache has seen for this repository.
        var seen = new HashSet<string>(_cache.ListTags(route.Upstream.Name, route.Repository), StringComparer.Ordinal);
        if (await _cache.TryReadListingAsync(route.Upstream.Name, route.Repository, FullTagListKey, context.RequestAborted).ConfigureAwait(false) is { } full)
        {
            seen.UnionWith(TagsPage.ReadTags(full));
        }

        if (seen.Count == 0)
        {
            _metrics.Request(RequestKinds.Tags, RequestResults.Error, route.Upstream.Name);
            await UpstreamError(route, response.Outcome, response.RetryAfter, response.Detail, isBlob: false, "the tag list").WriteAsync(context).ConfigureAwait(false);
            return;
        }

        _metrics.Request(RequestKinds.Tags, RequestResults.Stale, route.Upstream.Name);
        context.Response.Headers[HeaderNames.Warning] = StaleWarning(route, response.Detail);
        var (cachedBody, cachedLink) = TagsPage.Paginate([.. seen], clientName, limit, last, null, route.Namespace);
        await WriteJsonAsync(context, cachedBody, MediaTypes.Json, cachedLink).ConfigureAwait(false);
    }

    /// <summary>
    /// Referrers pass through from the upstream and their last answer is kept for when it is unreachable. A 404
    /// (upstream without the API, or nothing cached while it is down) tells clients to fall back to the referrers
    /// tag schema, which the cache may hold.
    /// </summary>
    private async Task HandleReferrersAsync(HttpContext context, Route route, string clientName, string reference)
    {
        if (!TryParseDigest(reference, out var digest, out var digestError))
        {
            await digestError.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        string? artifactType = context.Request.Query["artifactType"];
        var cacheKey = "referrers-" + digest.Encoded.ToString() + (artifactType is null ? "" : "-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(artifactType)))[..16]);
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, "referrers/" + digest.Value)
            {
                Query = artifactType is null ? null : "artifactType=" + Uri.EscapeDataString(artifactType),
                Accept = MediaTypes.OciIndex + ", " + MediaTypes.Json,
            },
            context.RequestAborted).ConfigureAwait(false);

        if (response.IsSuccess && await TryReadListingAsync(response.Message!, route.Upstream.Options.RequestTimeout, context.RequestAborted).ConfigureAwait(false) is { } body)
        {
            await _cache.PutListingAsync(route.Upstream.Name, route.Repository, cacheKey, body, context.RequestAborted).ConfigureAwait(false);
            _metrics.Request(RequestKinds.Referrers, RequestResults.Miss, route.Upstream.Name);
            if (response.Message!.Headers.NonValidated.TryGetValues(RegistryHeaders.OciFiltersApplied, out var filters))
            {
                context.Response.Headers[RegistryHeaders.OciFiltersApplied] = filters.ToString();
            }

            var contentType = MediaTypes.StripParameters(response.Message.Content.Headers.ContentType?.ToString()) ?? MediaTypes.OciIndex;
            await WriteJsonAsync(context, body, contentType, UpstreamLink(response.Message, clientName, route)).ConfigureAwait(false);
            return;
        }

        if (response.Outcome != UpstreamOutcome.NotFound
            && await _cache.TryReadListingAsync(route.Upstream.Name, route.Repository, cacheKey, context.RequestAborted).ConfigureAwait(false) is { } cached)
        {
            _metrics.Request(RequestKinds.Referrers, RequestResults.Stale, route.Upstream.Name);
            context.Response.Headers[HeaderNames.Warning] = StaleWarning(route, response.Detail);
            if (artifactType is not null)
            {
                context.Response.Headers[RegistryHeaders.OciFiltersApplied] = "artifactType";
            }

            await WriteJsonAsync(context, cached, MediaTypes.OciIndex, null).ConfigureAwait(false);
            return;
        }

        _metrics.Request(RequestKinds.Referrers, RequestResults.NotFound, route.Upstream.Name);
        await OciError.ManifestUnknown(digest.Value, response.Outcome == UpstreamOutcome.NotFound
            ? "the upstream does not serve referrers for this digest"
            : "the upstream is unavailable and no referrers are cached").WriteAsync(context).ConfigureAwait(false);
    }

    private static string? UpstreamLink(HttpResponseMessage message, string clientName, Route route) =>
        message.Headers.NonValidated.TryGetValues("Link", out var links) ? RewriteLink(links.ToString(), clientName, route.Namespace) : null;

    private static Task WriteJsonAsync(HttpContext context, byte[] body, string contentType, string? link)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        if (link is not null)
        {
            response.Headers.Link = link;
        }

        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    /// <summary>
    /// Reads a listing body of bounded size within <paramref name="deadline"/>; null when it is too large, too slow,
    /// broken off, or not JSON.
    /// </summary>
    private async Task<byte[]?> TryReadListingAsync(HttpResponseMessage message, TimeSpan deadline, CancellationToken cancellationToken)
    {
        if (message.Content.Headers.ContentLength > MaxListingSize)
        {
            return null;
        }

        using var timeout = new CancellationTokenSource(deadline, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            await using var stream = await message.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(chunk, linked.Token).ConfigureAwait(false)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (buffer.Length > MaxListingSize)
                {
                    return null;
                }
            }

            var body = buffer.ToArray();
            using (JsonDocument.Parse(body))
            {
            }

            return body;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException
            || (ex is OperationCanceledException && timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested))
        {
            return null;
        }
    }

    /// <summary>
    /// Rewrites an upstream <c>Link: &lt;/v2/&lt;upstream repo&gt;/…?query&gt;; rel="next"</c> to this mirror's path for the
    /// name the client used, keeping the query and re-adding <c>ns</c> so the next page routes the same way.
    /// </summary>
    internal static string? RewriteLink(string upstreamLink, string clientName, string? ns)
    {
        var open = upstreamLink.IndexOf('<');
        var close = upstreamLink.IndexOf('>', open + 1);
        if (open < 0 || close < 0)
        {
            return null;
        }

        var target = upstreamLink[(open + 1)..close];
        var question = target.IndexOf('?');
        var query = question < 0 ? "" : target[(question + 1)..];
        var marker = target.Contains("/referrers/", StringComparison.Ordinal) ? target[target.LastIndexOf("/referrers/", StringComparison.Ordinal)..(question < 0 ? target.Length : question)] : "/tags/list";

        var parameters = query.Split('&', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("ns=", StringComparison.Ordinal)).ToList();
        if (ns is not null)
        {
            parameters.Add("ns=" + Uri.EscapeDataString(ns));
        }

        return $"</v2/{clientName}{marker}{(parameters.Count == 0 ? "" : "?" + string.Join('&', parameters))}>{upstreamLink[(close + 1)..]}";
    }
}
