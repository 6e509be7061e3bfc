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
        var cacheKey = "tags" + (n is null ? "" : "-n" + n) + (last is null ? "" : "-last-" + last);
        await HandleListingAsync(context, route, clientName, RequestKinds.Tags, "tags/list", upstreamQuery, MediaTypes.Json, cacheKey,
            (body, upstreamLink) => TagsPage.Paginate(body, clientName, limit, last, upstreamLink, route.Namespace),
            notFound: new OciError(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "repository name not known to registry", route.Repository)).ConfigureAwait(false);
    }

    private async Task HandleReferrersAsync(HttpContext context, Route route, string clientName, string reference)
    {
        if (!TryParseDigest(reference, out var digest, out var digestError))
        {
            await digestError.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        string? artifactType = context.Request.Query["artifactType"];
        var upstreamQuery = artifactType is null ? "" : "artifactType=" + Uri.EscapeDataString(artifactType);
        var cacheKey = "referrers-" + digest.Encoded.ToString() + (artifactType is null ? "" : "-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(artifactType)))[..16]);

        // A 404 tells clients to fall back to the referrers tag schema, which the cache may hold.
        await HandleListingAsync(context, route, clientName, RequestKinds.Referrers, "referrers/" + digest.Value, upstreamQuery, MediaTypes.OciIndex, cacheKey,
            shape: null, notFound: OciError.ManifestUnknown(digest.Value, "the upstream does not serve referrers for this digest")).ConfigureAwait(false);
    }

    /// <summary>
    /// Passes a listing (tags page, referrers index) through from the upstream, rewriting pagination links to
    /// this mirror, and keeps the last answer for when the upstream cannot be reached.
    /// </summary>
    private async Task HandleListingAsync(
        HttpContext context, Route route, string clientName, string kind, string upstreamPath, string upstreamQuery, string defaultContentType,
        string cacheKey, Func<byte[], string?, (byte[] Body, string? Link)>? shape, OciError notFound)
    {
        var cancellationToken = context.RequestAborted;
        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, route.Repository, upstreamPath) { Query = upstreamQuery, Accept = defaultContentType + ", " + MediaTypes.Json }, cancellationToken).ConfigureAwait(false);

        if (response.IsSuccess)
        {
            var upstreamLink = response.Message!.Headers.NonValidated.TryGetValues("Link", out var links) ? RewriteLink(links.ToString(), clientName, route.Namespace) : null;
            byte[] body;
            string? link;
            try
            {
                body = await ReadListingAsync(response.Message, cancellationToken).ConfigureAwait(false);
                (body, link) = shape is null ? (body, upstreamLink) : shape(body, upstreamLink);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException or InvalidDataException)
            {
                await ServeCachedListingAsync(context, route, kind, defaultContentType, cacheKey, UpstreamOutcome.Failed, ex.Message, notFound).ConfigureAwait(false);
                return;
            }

            var contentType = MediaTypes.StripParameters(response.Message!.Content.Headers.ContentType?.ToString()) ?? defaultContentType;
            await _cache.PutListingAsync(route.Upstream.Name, route.Repository, cacheKey, body, cancellationToken).ConfigureAwait(false);
            _metrics.Request(kind, RequestResults.Miss, route.Upstream.Name);

            if (response.Message.Headers.NonValidated.TryGetValues(RegistryHeaders.OciFiltersApplied, out var filters))
            {
                context.Response.Headers[RegistryHeaders.OciFiltersApplied] = filters.ToString();
            }

            await WriteJsonAsync(context, body, contentType, link).ConfigureAwait(false);
            return;
        }

        if (response.Outcome == UpstreamOutcome.NotFound)
        {
            _metrics.Request(kind, RequestResults.NotFound, route.Upstream.Name);
            await notFound.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        await ServeCachedListingAsync(context, route, kind, defaultContentType, cacheKey, response.Outcome, response.Detail, notFound).ConfigureAwait(false);
    }

    private async Task ServeCachedListingAsync(
        HttpContext context, Route route, string kind, string contentType, string cacheKey, UpstreamOutcome outcome, string? detail, OciError notFound)
    {
        var cached = await _cache.TryReadListingAsync(route.Upstream.Name, route.Repository, cacheKey, context.RequestAborted).ConfigureAwait(false);
        if (cached is null)
        {
            _metrics.Request(kind, RequestResults.Error, route.Upstream.Name);
            var error = kind == RequestKinds.Referrers ? notFound : UpstreamError(route, outcome, null, detail, isBlob: false, "the tag list");
            await error.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        _metrics.Request(kind, RequestResults.Stale, route.Upstream.Name);
        context.Response.Headers[HeaderNames.Warning] = StaleWarning(route, detail);
        await WriteJsonAsync(context, cached, contentType, null).ConfigureAwait(false);
    }

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

    private static async Task<byte[]> ReadListingAsync(HttpResponseMessage message, CancellationToken cancellationToken)
    {
        if (message.Content.Headers.ContentLength > MaxListingSize)
        {
            throw new InvalidDataException($"listing larger than {MaxListingSize} bytes");
        }

        await using var stream = await message.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxListingSize)
            {
                throw new InvalidDataException($"listing larger than {MaxListingSize} bytes");
            }
        }

        return buffer.ToArray();
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
