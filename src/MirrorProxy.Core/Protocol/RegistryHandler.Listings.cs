using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
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

        var result = await _listings.GetTagsAsync(route, n, last, context.RequestAborted).ConfigureAwait(false);
        if (result.Status is ListingStatus.NotFound or ListingStatus.Unavailable)
        {
            await OciErrors.Tags(route, result).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (result.Status == ListingStatus.Stale)
        {
            context.Response.Headers[HeaderNames.Warning] = OciErrors.StaleWarning(route, result.Detail);
        }

        var upstreamLink = result.UpstreamLink is { } link ? RewriteLink(link, clientName, route.Namespace) : null;
        var (body, pageLink) = TagsPage.Paginate(result.Tags, clientName, limit, last, upstreamLink, route.Namespace);
        await WriteJsonAsync(context, body, MediaTypes.Json, pageLink).ConfigureAwait(false);
    }

    private async Task HandleReferrersAsync(HttpContext context, Route route, string clientName, string reference)
    {
        if (!OciErrors.TryParseDigest(reference, out var digest, out var digestError))
        {
            await digestError.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        var result = await _listings.GetReferrersAsync(route, digest, context.Request.Query["artifactType"], context.RequestAborted).ConfigureAwait(false);
        if (result.Body is not { } body)
        {
            await OciErrors.Referrers(digest, result).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (result.Status == ListingStatus.Stale)
        {
            context.Response.Headers[HeaderNames.Warning] = OciErrors.StaleWarning(route, result.Detail);
        }

        if (result.FiltersApplied is { } filters)
        {
            context.Response.Headers[RegistryHeaders.OciFiltersApplied] = filters;
        }

        await WriteJsonAsync(context, body, result.ContentType, result.UpstreamLink is { } link ? RewriteLink(link, clientName, route.Namespace) : null).ConfigureAwait(false);
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
