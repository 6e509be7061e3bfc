using Microsoft.AspNetCore.Http;
using MirrorProxy.Auth;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Status;

namespace MirrorProxy.Protocol;

/// <summary>
/// The pull side of the OCI distribution API under <c>/v2/</c>. Parses and validates the request, routes it, asks
/// the blob, manifest or listing service (which answer with values), and writes the answer: content through one
/// sender per kind, failures through <see cref="OciErrors"/>. Push and every other method get 405 UNSUPPORTED.
/// Every routed request is authenticated and checked against the access policy before anything is looked up.
/// </summary>
internal sealed partial class RegistryHandler
{
    private readonly UpstreamRouter _router;
    private readonly ManifestService _manifests;
    private readonly BlobService _blobs;
    private readonly ListingService _listings;
    private readonly ClientAuthenticator _authenticator;
    private readonly AccessPolicy _access;
    private readonly MirrorMetrics _metrics;
    private readonly PullFailureLog _failures;

    public RegistryHandler(
        UpstreamRouter router, ManifestService manifests, BlobService blobs, ListingService listings, ClientAuthenticator authenticator, AccessPolicy access,
        MirrorMetrics metrics, PullFailureLog failures)
    {
        _failures = failures;
        _router = router;
        _manifests = manifests;
        _blobs = blobs;
        _listings = listings;
        _authenticator = authenticator;
        _access = access;
        _metrics = metrics;
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
                return HandleBaseAsync(context);
            case RegistryRequestKind.Catalog:
                return new OciError(StatusCodes.Status404NotFound, OciErrorCode.Unsupported, "catalog listing is not supported by this mirror").WriteAsync(context);
            case RegistryRequestKind.Unknown:
                return new OciError(StatusCodes.Status404NotFound, OciErrorCode.NameUnknown, "no such endpoint", $"{request.PathBase}{request.Path}").WriteAsync(context);
        }

        var routed = _router.Route(path.Name, request.Query["ns"]);
        if (!routed.IsRouted)
        {
            return OciErrors.Route(routed).WriteAsync(context);
        }

        return HandleRoutedAsync(context, path, routed.Route);
    }

    private async Task HandleRoutedAsync(HttpContext context, RegistryPath path, Route route)
    {
        var (outcome, identity) = await _authenticator.AuthenticateAsync(context).ConfigureAwait(false);
        var decision = outcome == AuthenticationOutcome.Rejected ? AccessDecision.AuthenticationRequired : _access.Decide(identity, route.Upstream, route.Repository);
        if (decision != AccessDecision.Allowed)
        {
            await (decision == AccessDecision.Denied
                ? OciErrors.NotAllowed(route)
                : OciErrors.Unauthorized(_authenticator.Challenge, outcome == AuthenticationOutcome.Rejected)).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (route.Namespace is not null)
        {
            context.Response.Headers[RegistryHeaders.OciNamespace] = route.Namespace;
        }

        await (path.Kind switch
        {
            RegistryRequestKind.Manifest => HandleManifestAsync(context, route, path.Reference),
            RegistryRequestKind.Blob => HandleBlobAsync(context, route, path.Reference),
            RegistryRequestKind.TagsList => HandleTagsListAsync(context, route, path.Name),
            _ => HandleReferrersAsync(context, route, path.Name, path.Reference),
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>/v2/</c>: where clients learn whether to authenticate. With users configured, a client without valid
    /// credentials gets the Basic challenge here (skopeo and Helm only send credentials after one); anonymous
    /// upstreams still answer anonymous requests.
    /// </summary>
    private async Task HandleBaseAsync(HttpContext context)
    {
        if (_authenticator.Enabled)
        {
            var (outcome, _) = await _authenticator.AuthenticateAsync(context).ConfigureAwait(false);
            if (outcome != AuthenticationOutcome.Authenticated)
            {
                await OciErrors.Unauthorized(_authenticator.Challenge, outcome == AuthenticationOutcome.Rejected).WriteAsync(context).ConfigureAwait(false);
                return;
            }
        }

        await WriteBaseAsync(context).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes an error for content that was not cached and could not be fetched, and records it for the status page
    /// and <c>mirrorproxy.pulls.failed</c>: what nodes asked for and did not get, while offline above all.
    /// </summary>
    private Task WritePullFailureAsync(HttpContext context, in Route route, string reference, OciError error)
    {
        _failures.Record(route.Upstream.Name, route.Repository, reference, error.Status, error.Detail is null ? error.Message : $"{error.Message}: {error.Detail}");
        return error.WriteAsync(context);
    }

    private static Task WriteBaseAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = MediaTypes.Json;
        response.ContentLength = 2;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync("{}"u8.ToArray(), context.RequestAborted).AsTask();
    }
}
