using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
    private async Task HandleManifestAsync(HttpContext context, Route route, string reference)
    {
        var cancellationToken = context.RequestAborted;
        ManifestResult result;
        if (reference.Contains(':'))
        {
            if (!OciErrors.TryParseDigest(reference, out var digest, out var digestError))
            {
                await digestError.WriteAsync(context).ConfigureAwait(false);
                return;
            }

            result = await _manifests.GetByDigestAsync(route, digest, cancellationToken).ConfigureAwait(false);
        }
        else if (!OciNames.IsValidTag(reference))
        {
            // A reference that is neither a digest nor a valid tag names no manifest: 404, as the conformance suite expects.
            await OciError.ManifestUnknown(reference, "not a valid tag or digest").WriteAsync(context).ConfigureAwait(false);
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
            await WritePullFailureAsync(context, route, reference, OciErrors.Manifest(route, result, reference)).ConfigureAwait(false);
            return;
        }

        if (!MediaTypes.IsAccepted(result.MediaType, context.Request.Headers.Accept))
        {
            await OciError.ManifestUnknown(reference, $"the manifest is {result.MediaType}, which the request's Accept header does not admit").WriteAsync(context).ConfigureAwait(false);
            return;
        }

        var content = result.Content!;
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = result.MediaType;
        response.ContentLength = content.Length;
        response.Headers[RegistryHeaders.ContentDigest] = result.Digest.Value;
        response.Headers.ETag = $"\"{result.Digest.Value}\"";
        if (result.Status == ManifestStatus.Stale)
        {
            response.Headers[HeaderNames.Warning] = OciErrors.StaleWarning(route, result.Detail);
        }

        if (!HttpMethods.IsHead(context.Request.Method))
        {
            _metrics.BytesServed(content.Length, fromCache: result.Status != ManifestStatus.Fetched, route.Upstream.Name);
            await response.Body.WriteAsync(content, cancellationToken).ConfigureAwait(false);
        }
    }
}
