using System.Collections.Concurrent;
using MirrorProxy.Common;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Upstream;

/// <summary>How a token fetch ended.</summary>
internal enum TokenOutcome
{
    Ok,
    /// <summary>The token service answered 401 or 403: these credentials (or none) may not pull this scope.</summary>
    Refused,
    /// <summary>The token service answered 429.</summary>
    RateLimited,
    /// <summary>The token service answered 5xx.</summary>
    ServerError,
    /// <summary>No answer: refused or dropped connection, timeout, reset, TLS or DNS failure.</summary>
    Unreachable,
    /// <summary>An answer that is not a token (HTML from a captive portal, a bad realm, garbage).</summary>
    Unusable,
}

/// <summary>A token, or why there is none.</summary>
internal readonly record struct TokenResult(TokenOutcome Outcome, string? Token, string? Detail)
{
    public static TokenResult Success(string token) => new(TokenOutcome.Ok, token, null);
}

/// <summary>
/// Bearer tokens per (realm, service, scope), kept until they expire; concurrent requests for one scope share
/// one token fetch. One instance per upstream, so credentials never cross upstreams. Bounded: expired tokens are
/// dropped, and past <see cref="MaxTokens"/> scopes the ones expiring soonest make room, so clients asking for
/// endless random repository names cannot grow it.
/// </summary>
internal sealed partial class TokenCache
{
    /// <summary>Most tokens kept per upstream (a few hundred bytes each).</summary>
    internal const int MaxTokens = 1024;

    private static readonly TimeSpan DefaultLifetime = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExpirySkew = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, CachedToken> _tokens = new(StringComparer.Ordinal);
    private readonly SingleFlight<TokenResult> _fetches = new();
    private readonly Lock _trimGate = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public TokenCache(TimeProvider time, ILogger logger)
    {
        _time = time;
        _logger = logger;
    }

    /// <summary>Tokens held now.</summary>
    public int Count => _tokens.Count;

    private readonly record struct CachedToken(string Token, DateTimeOffset ExpiresAt);

    public bool TryGetCached(string realm, string? service, string scope, out string token)
    {
        if (_tokens.TryGetValue(Key(realm, service, scope), out var cached) && cached.ExpiresAt > _time.GetUtcNow())
        {
            token = cached.Token;
            return true;
        }

        token = "";
        return false;
    }

    public void Invalidate(string realm, string? service, string scope) => _tokens.TryRemove(Key(realm, service, scope), out _);

    /// <summary>Returns a token, fetching one when none is cached; otherwise why there is none.</summary>
    public async ValueTask<TokenResult> GetAsync(
        HttpMessageInvoker invoker, string realm, string? service, string scope, AuthenticationHeaderValue? credentials,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (TryGetCached(realm, service, scope, out var token))
        {
            return TokenResult.Success(token);
        }

        var key = Key(realm, service, scope);
        return await _fetches.RunAsync(
            key,
            static s => s.Self.FetchAsync(s.Invoker, s.Key, s.Realm, s.Service, s.Scope, s.Credentials, s.Timeout),
            (Self: this, Invoker: invoker, Key: key, Realm: realm, Service: service, Scope: scope, Credentials: credentials, Timeout: timeout),
            cancellationToken).ConfigureAwait(false);
    }

    private async Task<TokenResult> FetchAsync(
        HttpMessageInvoker invoker, string key, string realm, string? service, string scope, AuthenticationHeaderValue? credentials, TimeSpan timeout)
    {
        if (!Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("http" or "https"))
        {
            Log.BadRealm(_logger, realm);
            return new TokenResult(TokenOutcome.Unusable, null, "the token realm is not an http(s) URL");
        }

        var query = new System.Text.StringBuilder(realmUri.Query.Length > 1 ? realmUri.Query[1..] + "&" : "");
        if (!string.IsNullOrEmpty(service))
        {
            query.Append("service=").Append(Uri.EscapeDataString(service)).Append('&');
        }

        query.Append("scope=").Append(Uri.EscapeDataString(scope));
        var uri = new UriBuilder(realmUri) { Query = query.ToString() }.Uri;

        using var cts = new CancellationTokenSource(timeout, _time);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.Authorization = credentials;
            using var response = await invoker.SendAsync(request, cts.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                Log.TokenRefused(_logger, realmUri.Host, scope, status);
                var outcome = status switch
                {
                    401 or 403 => TokenOutcome.Refused,
                    429 => TokenOutcome.RateLimited,
                    >= 500 => TokenOutcome.ServerError,
                    _ => TokenOutcome.Unusable,
                };
                return new TokenResult(outcome, null, $"token service {realmUri.Host} answered {status}");
            }

            if (response.Content.Headers.ContentLength > MaxTokenAnswer)
            {
                return new TokenResult(TokenOutcome.Unusable, null, $"token service {realmUri.Host} sent {response.Content.Headers.ContentLength} bytes");
            }

            await using var body = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            using var json = await JsonDocument.ParseAsync(new LimitedStream(body, MaxTokenAnswer), default, cts.Token).ConfigureAwait(false);
            if (!TryReadToken(json.RootElement, out var token, out var lifetime, out var issuedAt))
            {
                Log.TokenMissing(_logger, realmUri.Host);
                return new TokenResult(TokenOutcome.Unusable, null, $"token service {realmUri.Host} answered without a token");
            }

            // A clock that disagrees with the token server must not make a fresh token look expired.
            var now = _time.GetUtcNow();
            if (issuedAt is not { } issued || issued > now || issued < now - lifetime)
            {
                issuedAt = now;
            }

            _tokens[key] = new CachedToken(token, issuedAt.Value + lifetime - ExpirySkew);
            if (_tokens.Count > MaxTokens)
            {
                Trim();
            }

            return TokenResult.Success(token);
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            Log.TokenFailed(_logger, realmUri.Host, ex.Message);
            return new TokenResult(TokenOutcome.Unusable, null, $"token service {realmUri.Host} answered something that is not a token");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            Log.TokenFailed(_logger, realmUri.Host, ex.Message);
            var detail = ex is OperationCanceledException ? $"no answer from token service {realmUri.Host} within {timeout.TotalSeconds:0.###} s" : $"token service {realmUri.Host}: {ex.Message}";
            return new TokenResult(TokenOutcome.Unreachable, null, detail);
        }
    }

    /// <summary>Drops expired tokens, then those expiring soonest, down to three quarters of the cap.</summary>
    private void Trim()
    {
        if (!_trimGate.TryEnter())
        {
            return;
        }

        try
        {
            var now = _time.GetUtcNow();
            foreach (var (key, cached) in _tokens)
            {
                if (cached.ExpiresAt <= now)
                {
                    _tokens.TryRemove(key, out _);
                }
            }

            var excess = _tokens.Count - MaxTokens * 3 / 4;
            if (excess > 0)
            {
                // ToArray is the dictionary's own snapshot: LINQ would copy it by Count then CopyTo, which throws when
                // another request adds a token in between.
                foreach (var (key, _) in _tokens.ToArray().OrderBy(p => p.Value.ExpiresAt).Take(excess))
                {
                    _tokens.TryRemove(key, out _);
                }
            }
        }
        finally
        {
            _trimGate.Exit();
        }
    }

    private const int MaxTokenAnswer = 64 * 1024;

    /// <summary>
    /// Reads <c>token</c> (or <c>access_token</c>), <c>expires_in</c> (a number, or a numeric string as some token
    /// services send; at least 60 s) and <c>issued_at</c> from a token answer of any shape.
    /// </summary>
    internal static bool TryReadToken(JsonElement root, out string token, out TimeSpan lifetime, out DateTimeOffset? issuedAt)
    {
        token = "";
        lifetime = DefaultLifetime;
        issuedAt = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        foreach (var name in (ReadOnlySpan<string>)["token", "access_token"])
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text)
            {
                token = text;
                break;
            }
        }

        if (token.Length == 0)
        {
            return false;
        }

        if (root.TryGetProperty("expires_in", out var expires))
        {
            var seconds = expires.ValueKind switch
            {
                JsonValueKind.Number when expires.TryGetDouble(out var n) => n,
                JsonValueKind.String when double.TryParse(expires.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var n) => n,
                _ => 0,
            };
            if (seconds > DefaultLifetime.TotalSeconds && seconds < TimeSpan.MaxValue.TotalSeconds)
            {
                lifetime = TimeSpan.FromSeconds(seconds);
            }
        }

        if (root.TryGetProperty("issued_at", out var issued) && issued.ValueKind == JsonValueKind.String
            && DateTimeOffset.TryParse(issued.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at))
        {
            issuedAt = at;
        }

        return true;
    }

    private static string Key(string realm, string? service, string scope) => string.Concat(realm, "\n", service, "\n", scope);

    private static partial class Log
    {
        [LoggerMessage(1101, LogLevel.Warning, "Token service {Host} refused scope {Scope} with status {Status}")]
        public static partial void TokenRefused(ILogger logger, string host, string scope, int status);

        [LoggerMessage(1102, LogLevel.Warning, "Token service {Host} failed: {Reason}")]
        public static partial void TokenFailed(ILogger logger, string host, string reason);

        [LoggerMessage(1103, LogLevel.Warning, "Token service {Host} answered without a token")]
        public static partial void TokenMissing(ILogger logger, string host);

        [LoggerMessage(1104, LogLevel.Warning, "Challenge realm '{Realm}' is not an http(s) URL")]
        public static partial void BadRealm(ILogger logger, string realm);
    }
}
