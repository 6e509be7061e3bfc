using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging;
using MirrorProxy.Common;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Resilience;
using MirrorProxy.Storage;
using MirrorProxy.Upstream;

namespace MirrorProxy.Helm;

/// <summary>
/// Client for one classic Helm repository: its index and chart files, behind the same circuit breaker and timeouts
/// as a registry upstream (a transport failure marks it down at once; a probe brings it back). Redirects are
/// followed here, and the repository's credentials go to its own scheme, host and port only, as Helm sends them.
/// Every outcome is a value.
/// </summary>
internal sealed partial class HelmRepository : IDisposable
{
    private const int MaxRedirects = 10;
    private static readonly ProductInfoHeaderValue UserAgent = new("mirrorproxy", "1.0");

    private readonly HttpMessageInvoker _invoker;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AuthenticationHeaderValue? _credentials;
    private readonly Uri _base;

    public HelmRepository(HelmRepositoryOptions options, OfflineMode offline, BackgroundWork background, MirrorMetrics metrics, TimeProvider time, ILoggerFactory loggers)
        : this(options, null, offline, background, metrics, time, loggers)
    {
    }

    public HelmRepository(
        HelmRepositoryOptions options, HttpMessageInvoker? invoker, OfflineMode offline, BackgroundWork background, MirrorMetrics metrics, TimeProvider time, ILoggerFactory loggers)
    {
        Options = options;
        Name = options.Name;
        Names = [options.Name];
        // The breaker, timeouts and TLS trust of a registry upstream, with their defaults.
        UpstreamOptions = new UpstreamOptions { Name = "helm:" + options.Name, Url = options.Url, CaFile = options.CaFile };
        _base = new Uri(options.Url, UriKind.Absolute);
        _invoker = invoker ?? UpstreamRegistry.CreateInvoker(UpstreamOptions);
        _metrics = metrics;
        _time = time;
        _logger = loggers.CreateLogger<HelmRepository>();
        var password = options.PasswordFile is { } file ? File.ReadLines(file).FirstOrDefault()?.Trim() : options.Password;
        if (!string.IsNullOrEmpty(options.Username) && password is not null)
        {
            _credentials = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{password}")));
        }

        IndexUrl = Resolve("index.yaml")!;
        Resilience = new UpstreamResilience(UpstreamOptions.Name, UpstreamOptions, offline, background, time, _logger);
        Resilience.SetProbe(ProbeAsync);
    }

    public HelmRepositoryOptions Options { get; }

    public UpstreamOptions UpstreamOptions { get; }

    public string Name { get; }

    /// <summary>The name, as the access rules match it (where an upstream has its name and aliases).</summary>
    public IReadOnlyList<string> Names { get; }

    public Uri IndexUrl { get; }

    public UpstreamResilience Resilience { get; }

    /// <summary>Whether any client may read this repository through the mirror (it is anonymous); otherwise only authenticated, allowed users.</summary>
    public bool IsPublic => Options.Anonymous ?? _credentials is null;

    /// <summary>This repository as the origin of cached content (its name in the content's origins is <c>helm:NAME</c>).</summary>
    public ContentOrigin Origin => new(UpstreamOptions.Name, IsPublic);

    /// <summary>
    /// A URL of the index resolved as Helm resolves it: an absolute one as it is; a relative one against the
    /// repository's URL with a trailing slash, taking the repository URL's query. Null when it is no http(s) URL.
    /// </summary>
    public Uri? Resolve(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var absolute) && absolute.Scheme is "http" or "https")
        {
            return absolute;
        }

        if (!Uri.TryCreate(url, UriKind.Relative, out var relative) || url.StartsWith("//", StringComparison.Ordinal))
        {
            return null;
        }

        var builder = new UriBuilder(_base);
        builder.Path = builder.Path.TrimEnd('/') + "/";
        var query = builder.Query;
        builder.Query = "";
        var resolved = new UriBuilder(new Uri(builder.Uri, relative)) { Query = query.TrimStart('?') };
        return resolved.Uri;
    }

    /// <summary>
    /// Sends a GET or HEAD and follows redirects to a final answer, within the time-to-headers budget and unless the
    /// repository is marked down or the mirror is offline. A 304 is a success.
    /// </summary>
    public async ValueTask<UpstreamResponse> SendAsync(HttpMethod method, Uri url, string? accept, EntityTagHeaderValue? ifNoneMatch, DateTimeOffset? ifModifiedSince,
        bool isBlob, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var timeout = isBlob ? UpstreamOptions.BlobRequestTimeout : UpstreamOptions.RequestTimeout;
        var response = await Resilience.ExecuteAsync(
            static (s, ct) => s.Self.SendCoreAsync(s.Method, s.Url, s.Accept, s.IfNoneMatch, s.IfModifiedSince, ct),
            (Self: this, Method: method, Url: url, Accept: accept, IfNoneMatch: ifNoneMatch, IfModifiedSince: ifModifiedSince), timeout, cancellationToken).ConfigureAwait(false);
        if (response.Outcome == UpstreamOutcome.Skipped)
        {
            return response;
        }

        var elapsed = _time.GetElapsedTime(started);
        _metrics.UpstreamRequest(UpstreamOptions.Name, response.StatusCode is { } status ? ((int)status).ToString(CultureInfo.InvariantCulture) : response.Outcome.ToString().ToLowerInvariant(),
            elapsed.TotalSeconds);
        if (response.Outcome is not (UpstreamOutcome.Success or UpstreamOutcome.NotFound))
        {
            Log.RequestFailed(_logger, Name, Display(url), response.Outcome, response.Detail ?? "", elapsed.TotalMilliseconds);
        }

        return response;
    }

    /// <summary>A chart file (or its provenance) as a blob source for the shared download machinery.</summary>
    public BlobOrigin ChartOrigin(Uri url, string location) => new(new ChartSource(this, url), location);

    /// <summary>A URL for logs: no query (signed URLs carry tokens there).</summary>
    public static string Display(Uri url) => url.GetLeftPart(UriPartial.Path);

    private async Task<UpstreamResponse> SendCoreAsync(
        HttpMethod method, Uri url, string? accept, EntityTagHeaderValue? ifNoneMatch, DateTimeOffset? ifModifiedSince, CancellationToken cancellationToken)
    {
        for (var hops = 0; ; hops++)
        {
            using var message = new HttpRequestMessage(method, url);
            message.Headers.UserAgent.Add(UserAgent);
            if (accept is not null)
            {
                message.Headers.TryAddWithoutValidation("Accept", accept);
            }

            if (ifNoneMatch is not null)
            {
                message.Headers.IfNoneMatch.Add(ifNoneMatch);
            }

            message.Headers.IfModifiedSince = ifModifiedSince;
            if (IsOwnOrigin(url))
            {
                message.Headers.Authorization = _credentials;
            }

            var response = await _invoker.SendAsync(message, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                response.Dispose();
                if (hops >= MaxRedirects)
                {
                    return new UpstreamResponse(UpstreamOutcome.Failed, null, $"more than {MaxRedirects} redirects");
                }

                url = location.IsAbsoluteUri ? location : new Uri(url, location);
                if (url.Scheme is not ("http" or "https"))
                {
                    return new UpstreamResponse(UpstreamOutcome.Failed, null, $"redirect to unsupported scheme {url.Scheme}");
                }

                method = status == 303 && method != HttpMethod.Head ? HttpMethod.Get : method;
                continue;
            }

            if (status == 304)
            {
                return new UpstreamResponse(UpstreamOutcome.Success, response);
            }

            var outcome = UpstreamResponse.Classify(response.StatusCode);
            if (outcome == UpstreamOutcome.Success && IsHtml(response))
            {
                response.Dispose();
                return new UpstreamResponse(UpstreamOutcome.Intercepted, null, $"an HTML page from {url.Host} where a chart repository's file was expected (a captive portal?)");
            }

            return new UpstreamResponse(outcome, response, outcome == UpstreamOutcome.Success ? null : $"HTTP {status} from {url.Host}");
        }
    }

    /// <summary>The repository answers again when its index URL answers without an HTML page or a server error.</summary>
    private async Task<UpstreamResponse> ProbeAsync(CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Head, IndexUrl);
        message.Headers.UserAgent.Add(UserAgent);
        message.Headers.Authorization = _credentials;
        using var response = await _invoker.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        var outcome = status >= 500 ? UpstreamOutcome.ServerError
            : status is >= 300 and < 400 && status != 304 ? UpstreamOutcome.Intercepted
            : IsHtml(response) ? UpstreamOutcome.Intercepted : UpstreamOutcome.Success;
        return new UpstreamResponse(outcome, null);
    }

    private bool IsOwnOrigin(Uri url) =>
        string.Equals(url.Scheme, _base.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(url.Authority, _base.Authority, StringComparison.OrdinalIgnoreCase);

    private static bool IsHtml(HttpResponseMessage response) =>
        MediaTypes.StripParameters(response.Content.Headers.ContentType?.MediaType) is { } type
        && (type.Equals("text/html", StringComparison.OrdinalIgnoreCase) || type.Equals("application/xhtml+xml", StringComparison.OrdinalIgnoreCase));

    public void Dispose() => _invoker.Dispose();

    /// <summary>One chart file's URL, as a blob upstream.</summary>
    private sealed class ChartSource(HelmRepository repository, Uri url) : IBlobUpstream
    {
        public string Name => repository.UpstreamOptions.Name;

        public ContentOrigin Origin => repository.Origin;

        public UpstreamOptions Options => repository.UpstreamOptions;

        public ValueTask<UpstreamResponse> SendBlobAsync(HttpMethod method, string location, Digest digest, CancellationToken cancellationToken) =>
            repository.SendAsync(method, url, HelmMediaTypes.ChartAccept, null, null, isBlob: true, cancellationToken);

        public ValueTask ReportBodyFailureAsync(bool transport, string detail) => repository.Resilience.ReportBodyFailureAsync(transport, detail);
    }

    private static partial class Log
    {
        [LoggerMessage(10001, LogLevel.Warning, "Helm repository {Repository} {Url}: {Outcome} ({Detail}) after {ElapsedMs:0} ms")]
        public static partial void RequestFailed(ILogger logger, string repository, string url, UpstreamOutcome outcome, string detail, double elapsedMs);
    }
}

/// <summary>Media types of a classic chart repository.</summary>
internal static class HelmMediaTypes
{
    public const string Index = "application/x-yaml";

    public const string Chart = "application/gzip";

    public const string Provenance = "application/pgp-signature";

    /// <summary>What Helm asks for when it downloads a chart (and its provenance).</summary>
    public const string ChartAccept = "application/gzip,application/octet-stream";
}
