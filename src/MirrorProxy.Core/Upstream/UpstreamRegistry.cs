using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using MirrorProxy.Common;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Resilience;
using MirrorProxy.Storage;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Upstream;

/// <summary>A request to an upstream registry, relative to its <c>/v2/</c> root and path prefix.</summary>
/// <param name="Method">GET or HEAD.</param>
/// <param name="Repository">Repository as the upstream knows it, without the upstream's path prefix.</param>
/// <param name="Path">Endpoint below the repository: <c>manifests/latest</c>, <c>blobs/sha256:…</c>, <c>tags/list</c>.</param>
internal readonly record struct UpstreamRequest(HttpMethod Method, string Repository, string Path)
{
    public string? Query { get; init; }

    public string? Accept { get; init; }

    public string? Range { get; init; }

    /// <summary>Blob requests get the longer time-to-headers budget (redirects to object storage).</summary>
    public bool IsBlob { get; init; }
}

/// <summary>
/// Client for one upstream registry: anonymous, basic or bearer-token auth (tokens cached per scope), explicit
/// redirect following that never carries <c>Authorization</c> to another host, and time-to-headers timeouts.
/// Every outcome is returned as a value.
/// </summary>
internal sealed partial class UpstreamRegistry : IDisposable, PullThrough.IBlobUpstream
{
    public const int MaxRedirects = 10;
    private static readonly ProductInfoHeaderValue UserAgent = new("mirrorproxy", "1.0");

    private readonly HttpMessageInvoker _invoker;
    private readonly TokenCache _tokens;
    private readonly MirrorMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AuthenticationHeaderValue? _basicCredentials;
    private readonly string _baseAuthority;
    private readonly string _rootPath;
    private readonly ConcurrentDictionary<string, AuthChallenge> _challenges = new(StringComparer.OrdinalIgnoreCase);

    public UpstreamRegistry(UpstreamOptions options, OfflineMode offline, BackgroundWork background, MirrorMetrics metrics, TimeProvider time, ILoggerFactory loggerFactory)
        : this(options, CreateInvoker(options), offline, background, metrics, time, loggerFactory)
    {
    }

    public UpstreamRegistry(
        UpstreamOptions options, HttpMessageInvoker invoker, OfflineMode offline, BackgroundWork background, MirrorMetrics metrics, TimeProvider time,
        ILoggerFactory loggerFactory)
    {
        Options = options;
        Name = options.Name;
        Names = [options.Name, .. options.Aliases];
        LibraryPrefix = options.LibraryPrefix ?? options.Name.Equals("docker.io", StringComparison.OrdinalIgnoreCase);
        _invoker = invoker;
        _metrics = metrics;
        _time = time;
        _logger = loggerFactory.CreateLogger<UpstreamRegistry>();
        _tokens = new TokenCache(time, _logger);

        var baseUri = new Uri(options.Url, UriKind.Absolute);
        _baseAuthority = Authority(baseUri);
        var prefix = baseUri.AbsolutePath.Trim('/');
        if (prefix == "v2" || prefix.EndsWith("/v2", StringComparison.Ordinal))
        {
            prefix = prefix[..^2].TrimEnd('/');
        }

        PathPrefix = prefix.Length == 0 ? "" : prefix + "/";
        _rootPath = $"{baseUri.Scheme}://{baseUri.Authority}/v2/";

        var password = options.PasswordFile is { } file ? ReadFirstLine(file) : options.Password;
        if (!string.IsNullOrEmpty(options.Username) && password is not null)
        {
            _basicCredentials = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{password}")));
        }

        if (options.InsecureSkipVerify)
        {
            Log.InsecureUpstream(_logger, Name);
        }

        Resilience = new UpstreamResilience(Name, options, offline, background, time, _logger);
        Resilience.SetProbe(ProbeAsync);
    }

    /// <summary>Whether any client may pull through this upstream (it is anonymous); otherwise only authenticated, allowed users.</summary>
    public bool IsPublic => Options.Anonymous ?? _basicCredentials is null;

    /// <summary>This upstream as the origin of cached content.</summary>
    public ContentOrigin Origin => new(Name, IsPublic);

    /// <summary>Circuit breaker and timeouts for this upstream.</summary>
    public UpstreamResilience Resilience { get; }

    public UpstreamOptions Options { get; }

    /// <summary>The registry namespace, e.g. <c>docker.io</c>.</summary>
    public string Name { get; }

    /// <summary>The name and its aliases.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Single-segment names get <c>library/</c> (Docker Hub official images).</summary>
    public bool LibraryPrefix { get; }

    /// <summary>Path prefix every repository gets upstream (a Harbor project), with a trailing slash, or empty.</summary>
    public string PathPrefix { get; }

    public string NormalizeRepository(string name) => LibraryPrefix && !name.Contains('/') ? "library/" + name : name;

    /// <summary>
    /// Sends a request and follows redirects and auth challenges until a final answer, within the time-to-headers
    /// budget and unless the upstream is marked down or the mirror is offline.
    /// </summary>
    public async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var timeout = request.IsBlob ? Options.BlobRequestTimeout : Options.RequestTimeout;
        var started = _time.GetTimestamp();
        var response = await Resilience.ExecuteAsync(
            static (state, ct) => state.Self.SendCoreAsync(state.Request, ct), (Self: this, Request: request), timeout, cancellationToken).ConfigureAwait(false);

        if (response.Outcome == UpstreamOutcome.Skipped)
        {
            return response;
        }

        var elapsed = _time.GetElapsedTime(started);
        _metrics.UpstreamRequest(Name, response.StatusCode is { } status ? ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture) : response.Outcome.ToString().ToLowerInvariant(), elapsed.TotalSeconds);
        if (response.Outcome is not (UpstreamOutcome.Success or UpstreamOutcome.NotFound))
        {
            Log.UpstreamFailed(_logger, Name, request.Repository, request.Path, response.Outcome, response.Detail ?? response.StatusCode?.ToString() ?? "", elapsed.TotalMilliseconds);
        }

        return response;
    }

    /// <summary>
    /// <c>GET /v2/</c> without credentials. The upstream serves again when it answers as a registry does: 200 or 401,
    /// not an HTML page and not a redirect (a captive portal answers every URL with one or the other).
    /// </summary>
    private async Task<UpstreamResponse> ProbeAsync(CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, _rootPath);
        message.Headers.UserAgent.Add(UserAgent);
        using var response = await _invoker.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        var outcome = status is 200 or 401
            ? IsHtml(response) ? UpstreamOutcome.Intercepted : UpstreamOutcome.Success
            : status is >= 300 and < 400 ? UpstreamOutcome.Intercepted : UpstreamResponse.Classify(response.StatusCode);
        return new UpstreamResponse(outcome == UpstreamOutcome.NotFound ? UpstreamOutcome.Failed : outcome, null);
    }

    /// <summary>Registries answer their API with JSON or bytes; an HTML page comes from something in between.</summary>
    private static bool IsHtml(HttpResponseMessage response) =>
        MediaTypes.StripParameters(response.Content.Headers.ContentType?.MediaType) is { } type
        && (type.Equals("text/html", StringComparison.OrdinalIgnoreCase) || type.Equals("application/xhtml+xml", StringComparison.OrdinalIgnoreCase));

    /// <summary>A blob of a repository: <c>GET /v2/&lt;repository&gt;/blobs/&lt;digest&gt;</c>.</summary>
    public ValueTask<UpstreamResponse> SendBlobAsync(HttpMethod method, string location, Digest digest, CancellationToken cancellationToken) =>
        SendAsync(new UpstreamRequest(method, location, "blobs/" + digest.Value) { IsBlob = true }, cancellationToken);

    /// <summary>A failure after the headers (see <see cref="UpstreamResilience.ReportBodyFailureAsync"/>).</summary>
    public ValueTask ReportBodyFailureAsync(bool transport, string detail) => Resilience.ReportBodyFailureAsync(transport, detail);

    private async Task<UpstreamResponse> SendCoreAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var uri = BuildUri(request);
        var method = request.Method;
        var scope = $"repository:{PathPrefix}{request.Repository}:pull";
        var authRetries = 0;
        var hops = 0;

        while (true)
        {
            var authority = Authority(uri);
            var isOwnHost = string.Equals(authority, _baseAuthority, StringComparison.OrdinalIgnoreCase);
            using var message = new HttpRequestMessage(method, uri);
            message.Headers.UserAgent.Add(UserAgent);
            if (request.Accept is not null)
            {
                message.Headers.TryAddWithoutValidation("Accept", request.Accept);
            }

            if (request.Range is not null)
            {
                message.Headers.TryAddWithoutValidation("Range", request.Range);
            }

            string? bearerRealm = null;
            string? bearerService = null;
            if (_challenges.TryGetValue(authority, out var known))
            {
                if (known.IsBasic)
                {
                    // Credentials are configured for the upstream host only; another host never sees them.
                    message.Headers.Authorization = isOwnHost ? _basicCredentials : null;
                }
                else if (known.IsBearer && known.Realm is { } realm)
                {
                    // The upstream's credentials go to the token realm its own host named, and only over TLS unless the
                    // realm is that very host: never in clear text to a third party.
                    var credentials = isOwnHost && (realm.StartsWith("https://", StringComparison.OrdinalIgnoreCase)
                        || (Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) && string.Equals(Authority(realmUri), _baseAuthority, StringComparison.OrdinalIgnoreCase)))
                        ? _basicCredentials : null;
                    var token = await _tokens.GetAsync(_invoker, realm, known.Service, scope, credentials, Options.RequestTimeout, cancellationToken).ConfigureAwait(false);
                    if (token.Outcome != TokenOutcome.Ok)
                    {
                        var outcome = token.Outcome switch
                        {
                            TokenOutcome.Refused => UpstreamOutcome.Unauthorized,
                            TokenOutcome.RateLimited => UpstreamOutcome.RateLimited,
                            TokenOutcome.ServerError => UpstreamOutcome.ServerError,
                            TokenOutcome.Unreachable => UpstreamOutcome.Unreachable,
                            _ => UpstreamOutcome.Intercepted,
                        };
                        return new UpstreamResponse(outcome, null, token.Detail);
                    }

                    message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Token);
                    bearerRealm = realm;
                    bearerService = known.Service;
                }
            }

            var response = await _invoker.SendAsync(message, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;

            var sentBasic = message.Headers.Authorization?.Scheme == "Basic";
            if (status == 401 && authRetries < 2 && TryLearnChallenge(response, authority, isOwnHost, sentBasic))
            {
                if (bearerRealm is not null)
                {
                    // The token we sent was refused (expired or insufficient scope): ask for a fresh one once.
                    _tokens.Invalidate(bearerRealm, bearerService, scope);
                }

                authRetries++;
                response.Dispose();
                continue;
            }

            if (status is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                response.Dispose();
                if (++hops > MaxRedirects)
                {
                    return new UpstreamResponse(UpstreamOutcome.Failed, null, $"more than {MaxRedirects} redirects");
                }

                uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
                if (uri.Scheme is not ("http" or "https"))
                {
                    return new UpstreamResponse(UpstreamOutcome.Failed, null, $"redirect to unsupported scheme {uri.Scheme}");
                }

                if (status == 303 && method != HttpMethod.Head)
                {
                    method = HttpMethod.Get;
                }

                authRetries = 0;
                continue;
            }

            if (response.Headers.NonValidated.TryGetValues("ratelimit-remaining", out var remaining) && TryParseRateLimit(remaining.ToString(), out var left))
            {
                _metrics.RateLimitRemaining(Name, left);
            }

            var classified = UpstreamResponse.Classify(response.StatusCode);
            if (classified == UpstreamOutcome.Success && IsHtml(response))
            {
                response.Dispose();
                return new UpstreamResponse(UpstreamOutcome.Intercepted, null, $"an HTML page from {uri.Host} where a registry answer was expected (a captive portal?)");
            }

            return new UpstreamResponse(classified, response, classified == UpstreamOutcome.Success ? null : $"HTTP {status} from {uri.Host}");
        }
    }

    /// <summary>Records the challenge of a 401 answer. False when it offers nothing this client can satisfy.</summary>
    private bool TryLearnChallenge(HttpResponseMessage response, string authority, bool isOwnHost, bool sentBasic)
    {
        if (!response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values))
        {
            return false;
        }

        AuthChallenge? chosen = null;
        foreach (var challenge in AuthChallenge.Parse(values))
        {
            if (challenge.IsBearer && !string.IsNullOrEmpty(challenge.Realm))
            {
                chosen = challenge;
                break;
            }

            if (challenge.IsBasic && isOwnHost && _basicCredentials is not null)
            {
                chosen ??= challenge;
            }
        }

        if (chosen is null)
        {
            return false;
        }

        if (chosen.IsBasic && sentBasic)
        {
            // This request's Basic credentials were refused: retrying cannot help. (A request sent before a
            // concurrent one learnt the challenge went without them, and is retried.)
            return false;
        }

        _challenges[authority] = chosen;
        return true;
    }

    private Uri BuildUri(UpstreamRequest request)
    {
        var builder = new StringBuilder(_rootPath.Length + PathPrefix.Length + request.Repository.Length + request.Path.Length + 2 + (request.Query?.Length ?? 0));
        builder.Append(_rootPath).Append(PathPrefix).Append(request.Repository).Append('/').Append(request.Path);
        if (!string.IsNullOrEmpty(request.Query))
        {
            builder.Append('?').Append(request.Query);
        }

        return new Uri(builder.ToString(), UriKind.Absolute);
    }

    private static string Authority(Uri uri) => $"{uri.Scheme}://{uri.Authority}";

    /// <summary>Docker Hub sends <c>ratelimit-remaining: 76;w=21600</c>.</summary>
    internal static bool TryParseRateLimit(string value, out long remaining)
    {
        var semicolon = value.IndexOf(';');
        return long.TryParse(semicolon < 0 ? value : value.AsSpan(0, semicolon), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out remaining);
    }

    private static string ReadFirstLine(string path)
    {
        using var reader = new StreamReader(path);
        return (reader.ReadLine() ?? "").Trim();
    }

    internal static HttpMessageInvoker CreateInvoker(UpstreamOptions options) => new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = options.ConnectTimeout,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),
        EnableMultipleHttp2Connections = true,
        SslOptions = UpstreamTrust.CreateSslOptions(options),
    }, disposeHandler: true);

    public void Dispose() => _invoker.Dispose();

    private static partial class Log
    {
        [LoggerMessage(1002, LogLevel.Warning, "Upstream {Upstream}: certificate verification is OFF (InsecureSkipVerify); anyone on the path can serve content for it")]
        public static partial void InsecureUpstream(ILogger logger, string upstream);

        [LoggerMessage(1001, LogLevel.Warning, "Upstream {Upstream} {Repository}/{Path}: {Outcome} ({Detail}) after {ElapsedMs:0} ms")]
        public static partial void UpstreamFailed(ILogger logger, string upstream, string repository, string path, UpstreamOutcome outcome, string detail, double elapsedMs);
    }
}

/// <summary>Every configured upstream, and the default one.</summary>
internal sealed class UpstreamRegistrySet : IDisposable
{
    public UpstreamRegistrySet(IReadOnlyList<UpstreamRegistry> all, UpstreamRegistry? defaultUpstream)
    {
        All = all;
        Default = defaultUpstream;
    }

    public IReadOnlyList<UpstreamRegistry> All { get; }

    public UpstreamRegistry? Default { get; }

    public void Dispose()
    {
        foreach (var upstream in All)
        {
            upstream.Dispose();
        }
    }
}
