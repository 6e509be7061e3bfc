using MirrorProxy.Cache;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Status;
using MirrorProxy.Upstream;
using Microsoft.AspNetCore.Http;

namespace MirrorProxy.Protocol;

/// <summary>
/// The pull side of the OCI distribution API under <c>/v2/</c>. Parses and validates the request, routes it to
/// an upstream, and answers from the cache or through it. Push and every other method get 405 UNSUPPORTED.
/// </summary>
internal sealed partial class RegistryHandler
{
    private readonly UpstreamRouter _router;
    private readonly MirrorCache _cache;
    private readonly ManifestService _manifests;
    private readonly BlobService _blobs;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly PullFailureLog _failures;

    public RegistryHandler(UpstreamRouter router, MirrorCache cache, ManifestService manifests, BlobService blobs, MirrorMetrics metrics, TimeProvider time, PullFailureLog failures)
    {
        _failures = failures;
        _router = router;
        _cache = cache;
        _manifests = manifests;
        _blobs = blobs;
        _metrics = metrics;
        _time = time;
    }

    /// <summary>Handles a request whose path has had <c>/v2</c> moved to the path base.</summary>
    public Task HandleAsync(HttpContext context)
    {
        context.Response.Headers[RegistryHeaders.ApiVersion] = RegistryHeaders.ApiVersionValue;
        var request = context.Request;
        var path = RegistryPath.Parse(request.Path.Value);
        var isRead = HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method);

        if (path.Kind == RegistryRequestKind.Upload || !isRead)
        {
            return OciError.Unsupported($"{request.Method} {request.PathBase}{request.Path} is not supported: this registry is a pull-only mirror").WriteAsync(context);
        }

        switch (path.Kind)
        {
            case RegistryRequestKind.Base:
                return WriteBaseAsync(context);
            case RegistryRequestKind.Catalog:
                return new OciError(StatusCodes.Status404NotFound, OciErrorCode.Unsupported, "catalog listing is not supported by this mirror").WriteAsync(context);
            case RegistryRequestKind.Unknown:
                return new OciError(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "no such endpoint", $"{request.PathBase}{request.Path}").WriteAsync(context);
        }

        if (!UpstreamRouter.IsValidName(path.Name))
        {
            return new OciError(StatusCodes.Status400BadRequest, OciErrorCode.NameInvalid, "invalid repository name", path.Name).WriteAsync(context);
        }

        string? ns = request.Query["ns"];
        if (!_router.TryRoute(path.Name, ns, out var route, out var routeError))
        {
            return routeError.WriteAsync(context);
        }

        if (route.Namespace is not null)
        {
            context.Response.Headers[RegistryHeaders.OciNamespace] = route.Namespace;
        }

        return path.Kind switch
        {
            RegistryRequestKind.Manifest => HandleManifestAsync(context, route, path.Reference),
            RegistryRequestKind.Blob => HandleBlobAsync(context, route, path.Reference),
            RegistryRequestKind.TagsList => HandleTagsListAsync(context, route, path.Name),
            _ => HandleReferrersAsync(context, route, path.Name, path.Reference),
        };
    }

    private static Task WriteBaseAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = MediaTypes.Json;
        response.ContentLength = 2;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync("{}"u8.ToArray(), context.RequestAborted).AsTask();
    }

    /// <summary>Parses a digest from the path; on failure, the 400 answer to send.</summary>
    private static bool TryParseDigest(string text, out Digest digest, out OciError error)
    {
        error = default;
        switch (Digest.Parse(text, out digest))
        {
            case DigestParseStatus.Ok:
                return true;
            case DigestParseStatus.UnsupportedAlgorithm:
                error = new OciError(StatusCodes.Status400BadRequest, OciErrorCode.DigestInvalid, "unsupported digest algorithm", text);
                return false;
            default:
                error = new OciError(StatusCodes.Status400BadRequest, OciErrorCode.DigestInvalid, "invalid digest", text);
                return false;
        }
    }

    /// <summary>
    /// The answer when the upstream gave nothing usable and nothing is cached. Statuses are chosen so containerd
    /// moves on to its next host at once: never a 429 (containerd would hammer the mirror with retries).
    /// Each one is recorded for the status page and <c>mirrorproxy.pulls.failed</c>.
    /// </summary>
    private OciError UpstreamError(Route route, UpstreamOutcome outcome, TimeSpan? retryAfter, string? detail, bool isBlob, string reference)
    {
        var upstream = route.Upstream.Name;
        var error = outcome switch
        {
            UpstreamOutcome.NotFound => isBlob ? OciError.BlobUnknown(reference) : OciError.ManifestUnknown(reference),
            UpstreamOutcome.Unauthorized or UpstreamOutcome.Forbidden =>
                new OciError(StatusCodes.Status403Forbidden, OciErrorCode.Denied, $"upstream {upstream} denied access to {route.Repository}", detail),
            UpstreamOutcome.Failed =>
                new OciError(StatusCodes.Status502BadGateway, OciErrorCode.Unknown, $"upstream {upstream} gave an unusable answer", detail),
            _ => new OciError(StatusCodes.Status503ServiceUnavailable, OciErrorCode.Unavailable, $"upstream {upstream} is unavailable and {reference} is not cached", detail)
            {
                RetryAfterSeconds = (int)Math.Clamp(retryAfter?.TotalSeconds ?? 10, 1, 3600),
            },
        };
        _failures.Record(upstream, route.Repository, reference, error.Status, detail is null ? error.Message : $"{error.Message}: {detail}");
        return error;
    }

    private static string StaleWarning(Route route, string? detail) =>
        $"299 - \"served from cache: upstream {route.Upstream.Name} unavailable{(detail is null ? "" : " (" + Sanitize(detail) + ")")}\"";

    private static string Sanitize(string text) => text.Replace('"', '\'').Replace('\r', ' ').Replace('\n', ' ');
}
