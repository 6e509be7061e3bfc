using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using MirrorProxy.Auth;
using MirrorProxy.Cache;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;

namespace MirrorProxy.Helm;

/// <summary>
/// The classic Helm repositories under <c>/helm/NAME/</c>: <c>index.yaml</c> (the upstream's, with chart URLs
/// pointing here) and <c>charts/CHART/VERSION/FILE</c> (with <c>.prov</c>). GET and HEAD only. Failures follow the
/// registry's rules: 404 for what does not exist, 503 with <c>Retry-After</c> for what is not cached while the
/// upstream is unreachable, 502 for an upstream answer that cannot be used; never a 5xx for what is cached. A
/// body that fails to verify breaks the connection: never a complete-looking wrong answer. Every request for a
/// repository is authenticated and checked against the access policy first, as under <c>/v2/</c>: a private
/// repository (one with credentials) answers 401 with the Basic challenge to anonymous clients, and 404 to users
/// the rules do not let read it.
/// </summary>
internal sealed class HelmHandler
{
    private const string NoSuchRepository = "no such Helm repository: configure it under MirrorProxy:HelmRepositories (or --helm-repo NAME=URL)";

    private readonly HelmRepositorySet _repositories;
    private readonly HelmIndexService _indexes;
    private readonly HelmChartService _charts;
    private readonly MirrorCache _cache;
    private readonly HelmMetrics _metrics;
    private readonly ClientAuthenticator _authenticator;
    private readonly AccessPolicy _access;

    public HelmHandler(
        HelmRepositorySet repositories, HelmIndexService indexes, HelmChartService charts, MirrorCache cache, HelmMetrics metrics, ClientAuthenticator authenticator, AccessPolicy access)
    {
        _repositories = repositories;
        _indexes = indexes;
        _charts = charts;
        _cache = cache;
        _metrics = metrics;
        _authenticator = authenticator;
        _access = access;
    }

    /// <summary>Handles a request whose path has had <c>/helm</c> moved to the path base.</summary>
    public Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            context.Response.Headers.Allow = "GET, HEAD";
            return WriteErrorAsync(context, StatusCodes.Status405MethodNotAllowed, $"{request.Method} is not supported: the mirror serves Helm repositories read-only", null);
        }

        var parts = (request.Path.Value ?? "").Split('/');
        if (parts.Length < 3 || parts[0].Length != 0 || !_repositories.TryGet(parts[1], out var repository))
        {
            return WriteErrorAsync(context, StatusCodes.Status404NotFound, NoSuchRepository, null);
        }

        return HandleRepositoryAsync(context, repository, parts);
    }

    private async Task HandleRepositoryAsync(HttpContext context, HelmRepository repository, string[] parts)
    {
        // As under /v2/: who asks, and whether the access rules let them read this repository (and this chart).
        var isChart = parts.Length == 6 && parts[2] == "charts" && HelmNames.IsValidChartName(parts[3]) && HelmNames.IsValidVersion(parts[4]) && parts[5].Length > 0;
        var (outcome, identity) = await _authenticator.AuthenticateAsync(context).ConfigureAwait(false);
        var decision = outcome == AuthenticationOutcome.Rejected ? AccessDecision.AuthenticationRequired : _access.Decide(identity, repository, isChart ? parts[3] : null);
        if (decision == AccessDecision.AuthenticationRequired)
        {
            context.Response.Headers.WWWAuthenticate = _authenticator.Challenge;
            await WriteErrorAsync(context, StatusCodes.Status401Unauthorized, outcome == AuthenticationOutcome.Rejected ? "the credentials were refused" : "authentication required", null)
                .ConfigureAwait(false);
            return;
        }

        if (decision == AccessDecision.Denied)
        {
            // Answered as if it did not exist, as a registry repository the user may not read is.
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, isChart ? $"chart {parts[3]} {parts[4]} of Helm repository {repository.Name} does not exist" : NoSuchRepository, null).ConfigureAwait(false);
            return;
        }

        if (parts.Length == 3 && parts[2] == "index.yaml")
        {
            await HandleIndexAsync(context, repository).ConfigureAwait(false);
        }
        else if (isChart)
        {
            await (parts[5].EndsWith(".prov", StringComparison.Ordinal)
                ? HandleProvenanceAsync(context, repository, parts[3], parts[4])
                : HandleChartAsync(context, repository, parts[3], parts[4])).ConfigureAwait(false);
        }
        else
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "no such file: a Helm repository here has index.yaml and charts/CHART/VERSION/FILE", null).ConfigureAwait(false);
        }
    }

    private async Task HandleIndexAsync(HttpContext context, HelmRepository repository)
    {
        var result = await _indexes.GetIndexAsync(repository, context.RequestAborted).ConfigureAwait(false);
        if (!result.Found)
        {
            _metrics.Request(HelmRequestKinds.Index, result.Status == HelmIndexStatus.NotFound ? RequestResults.NotFound : RequestResults.Error, repository.Name);
            await WriteFailureAsync(context, repository, result.Status switch
            {
                HelmIndexStatus.NotFound => HelmChartStatus.NotFound,
                HelmIndexStatus.Invalid => HelmChartStatus.Invalid,
                _ => HelmChartStatus.Unavailable,
            }, "the index", result.Detail, result.RetryAfter).ConfigureAwait(false);
            return;
        }

        var stale = result.Status == HelmIndexStatus.Stale;
        BlobBody? body = null;
        long length;
        if (stale && _indexes.OfflineIndex == HelmOfflineIndex.Held)
        {
            var held = await _indexes.HeldIndexAsync(repository, result.Catalog!, context.RequestAborted).ConfigureAwait(false);
            if (held is null)
            {
                _metrics.Request(HelmRequestKinds.Index, RequestResults.Error, repository.Name);
                await WriteFailureAsync(context, repository, HelmChartStatus.Unavailable, "the index", "the stored index cannot be read", null).ConfigureAwait(false);
                return;
            }

            body = new MemoryBlobBody(held);
            length = held.Length;
        }
        else if (result.Content is { } content)
        {
            body = new MemoryBlobBody(content);
            length = content.Length;
        }
        else
        {
            (body, length) = await OpenStoredAsync(result.Catalog!, context.RequestAborted).ConfigureAwait(false);
            if (body is null)
            {
                _metrics.Request(HelmRequestKinds.Index, RequestResults.Error, repository.Name);
                await WriteFailureAsync(context, repository, HelmChartStatus.Unavailable, "the index", "the stored index is gone (evicted or damaged) and the upstream cannot give one now", null)
                    .ConfigureAwait(false);
                return;
            }
        }

        _metrics.Request(HelmRequestKinds.Index, result.Status switch
        {
            HelmIndexStatus.Fetched => RequestResults.Miss,
            HelmIndexStatus.Stale => RequestResults.Stale,
            _ => RequestResults.Hit,
        }, repository.Name);
        if (stale)
        {
            context.Response.Headers[HeaderNames.Warning] = StaleWarning(repository, result.Detail);
        }

        using (body)
        {
            await SendAsync(context, HelmRequestKinds.Index, HelmMediaTypes.Index, body, length).ConfigureAwait(false);
        }
    }

    private async Task HandleChartAsync(HttpContext context, HelmRepository repository, string chart, string version)
    {
        var result = await _charts.GetChartAsync(repository, chart, version, HttpMethods.IsHead(context.Request.Method), context.RequestAborted).ConfigureAwait(false);
        _metrics.Request(HelmRequestKinds.Chart, Label(result), repository.Name);
        if (result.Status != HelmChartStatus.Found)
        {
            await WriteFailureAsync(context, repository, result.Status, $"chart {chart} {version}", result.Detail, result.RetryAfter).ConfigureAwait(false);
            return;
        }

        context.Response.Headers.ETag = $"\"{result.Digest.Value}\"";
        using (result.Blob.Body)
        {
            await SendAsync(context, HelmRequestKinds.Chart, HelmMediaTypes.Chart, result.Blob.Body, result.Blob.Length).ConfigureAwait(false);
        }
    }

    private async Task HandleProvenanceAsync(HttpContext context, HelmRepository repository, string chart, string version)
    {
        var result = await _charts.GetProvenanceAsync(repository, chart, version, context.RequestAborted).ConfigureAwait(false);
        _metrics.Request(HelmRequestKinds.Provenance, Label(result), repository.Name);
        if (result.Status != HelmChartStatus.Found)
        {
            await WriteFailureAsync(context, repository, result.Status, $"the provenance of chart {chart} {version}", result.Detail, result.RetryAfter).ConfigureAwait(false);
            return;
        }

        using (result.Blob.Body)
        {
            await SendAsync(context, HelmRequestKinds.Provenance, HelmMediaTypes.Provenance, HttpMethods.IsHead(context.Request.Method) ? null : result.Blob.Body, result.Blob.Length)
                .ConfigureAwait(false);
        }
    }

    private static string Label(in HelmChartResult result) => result.Status switch
    {
        HelmChartStatus.Found => result.Blob.Status switch
        {
            BlobStatus.Hit => RequestResults.Hit,
            BlobStatus.Joined => RequestResults.Coalesced,
            _ => RequestResults.Miss,
        },
        HelmChartStatus.NotFound => RequestResults.NotFound,
        _ => RequestResults.Error,
    };

    /// <summary>The stored index text: from memory when small, else streamed from its file (its size checked when opened).</summary>
    private async ValueTask<(BlobBody? Body, long Length)> OpenStoredAsync(HelmCatalog catalog, CancellationToken cancellationToken)
    {
        if (catalog.Index is not { } index || !Digest.TryParse(index.Digest, out var digest) || await _cache.LookupAsync(digest, cancellationToken).ConfigureAwait(false) is not { } entry)
        {
            return (null, 0);
        }

        if (entry.Size <= _cache.Hot.MaxObjectSize)
        {
            var (status, content) = await _cache.ReadSmallAsync(digest, entry, cancellationToken).ConfigureAwait(false);
            return status == CachedContentStatus.Ok ? (new MemoryBlobBody(content!), content!.Length) : (null, 0);
        }

        var (openStatus, reader) = await _cache.OpenAsync(digest, entry, cancellationToken).ConfigureAwait(false);
        if (openStatus != CachedContentStatus.Ok)
        {
            return (null, 0);
        }

        _cache.Touch(digest, entry);
        return (new StoredBlobBody(reader!), entry.Size);
    }

    /// <summary>Sends a body whole. A source that fails mid-way breaks the connection.</summary>
    private async Task SendAsync(HttpContext context, string kind, string contentType, BlobBody? body, long? length)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = contentType;
        response.ContentLength = length;
        if (body is null || HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        try
        {
            var (sent, bytes) = await body.SendAsync(response.BodyWriter, 0, length ?? long.MaxValue, context.RequestAborted).ConfigureAwait(false);
            _metrics.Served(kind, bytes, body.FromCache);
            if (sent == SendResult.SourceFailed)
            {
                context.Abort();
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; a download goes on without it.
        }
    }

    private static Task WriteFailureAsync(HttpContext context, HelmRepository repository, HelmChartStatus status, string what, string? detail, TimeSpan? retryAfter) => status switch
    {
        HelmChartStatus.NotFound => WriteErrorAsync(context, StatusCodes.Status404NotFound, $"{what} of Helm repository {repository.Name} does not exist", detail),
        HelmChartStatus.Invalid or HelmChartStatus.NoDigest => WriteErrorAsync(context, StatusCodes.Status502BadGateway, $"Helm repository {repository.Name} gave an unusable answer for {what}", detail),
        _ => WriteRetryAsync(context, repository, what, detail, retryAfter),
    };

    private static Task WriteRetryAsync(HttpContext context, HelmRepository repository, string what, string? detail, TimeSpan? retryAfter)
    {
        context.Response.Headers.RetryAfter = ((int)Math.Clamp(retryAfter?.TotalSeconds ?? 10, 1, 3600)).ToString(CultureInfo.InvariantCulture);
        return WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, $"Helm repository {repository.Name} is unavailable and {what} is not cached", detail);
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string message, string? detail)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        var text = detail is null ? message + "\n" : $"{message}: {detail}\n";
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.WriteAsync(text, context.RequestAborted);
    }

    private static string StaleWarning(HelmRepository repository, string? detail)
    {
        var why = detail is null ? "" : " (" + new string(detail.Select(c => c is '"' ? '\'' : char.IsControl(c) || c > '~' ? ' ' : c).ToArray()) + ")";
        return $"299 - \"served from cache: Helm repository {repository.Name} unavailable{why}\"";
    }
}
