using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
    private async Task HandleManifestAsync(HttpContext context, Route route, string reference)
    {
        var cancellationToken = context.RequestAborted;
        ManifestResult result;
        if (reference.Contains(':'))
        {
            if (!TryParseDigest(reference, out var digest, out var digestError))
            {
                await digestError.WriteAsync(context).ConfigureAwait(false);
                return;
            }

            result = await _manifests.GetByDigestAsync(route, digest, cancellationToken).ConfigureAwait(false);
        }
        else if (!OciNames.IsValidTag(reference))
        {
            await new OciError(StatusCodes.Status400BadRequest, OciErrorCode.TagInvalid, "invalid tag", reference).WriteAsync(context).ConfigureAwait(false);
            return;
        }
        else
        {
            result = await _manifests.GetByTagAsync(route, reference, cancellationToken).ConfigureAwait(false);
        }

        _metrics.Request(RequestKinds.Manifest, result.Status switch
        {
            ManifestStatus.Hit => RequestResults.Hit,
            ManifestStatus.Fetched => RequestResults.Miss,
            ManifestStatus.Stale => RequestResults.Stale,
            ManifestStatus.NotFound => RequestResults.NotFound,
            _ => RequestResults.Error,
        }, route.Upstream.Name);

        if (!result.Found)
        {
            await UpstreamError(route, result.UpstreamOutcome, result.RetryAfter, result.Detail, isBlob: false, reference).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (!MediaTypes.IsAccepted(result.MediaType, context.Request.Headers.Accept))
        {
            await OciError.ManifestUnknown(reference, $"the manifest is {result.MediaType}, which the request's Accept header does not admit").WriteAsync(context).ConfigureAwait(false);
            return;
        }

        byte[]? content = null;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            content = await _cache.ReadContentAsync(result.Digest, cancellationToken, result.MediaType).ConfigureAwait(false);
            if (content is null)
            {
                // Deleted underneath us: the next request fetches it again.
                await OciError.ManifestUnknown(reference).WriteAsync(context).ConfigureAwait(false);
                return;
            }
        }

        _cache.Touch(result.Digest);
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = result.MediaType;
        response.ContentLength = result.Size;
        response.Headers[RegistryHeaders.ContentDigest] = result.Digest.Value;
        response.Headers.ETag = $"\"{result.Digest.Value}\"";
        if (result.Status == ManifestStatus.Stale)
        {
            response.Headers[HeaderNames.Warning] = StaleWarning(route, result.Detail);
        }

        if (content is not null)
        {
            _metrics.BytesServed(content.Length, fromCache: true, route.Upstream.Name);
            await response.Body.WriteAsync(content, cancellationToken).ConfigureAwait(false);
        }
    }
}
