using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Upstream;

/// <summary>
/// Bearer tokens per (realm, service, scope), kept until they expire; concurrent requests for one scope share
/// one token fetch. One instance per upstream, so credentials never cross upstreams.
/// </summary>
internal sealed partial class TokenCache
{
    private static readonly TimeSpan DefaultLifetime = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExpirySkew = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, CachedToken> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task<string?>> _inflight = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public TokenCache(TimeProvider time, ILogger logger)
    {
        _time = time;
        _logger = logger;
    }

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

    /// <summary>Returns a token, fetching one when none is cached; null when the token service refused or failed.</summary>
    public async ValueTask<string?> GetAsync(
        HttpMessageInvoker invoker, string realm, string? service, string scope, AuthenticationHeaderValue? credentials,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (TryGetCached(realm, service, scope, out var token))
        {
            return token;
        }

        var key = Key(realm, service, scope);
        var fetch = _inflight.GetOrAdd(key, _ => FetchAsync(invoker, key, realm, service, scope, credentials, timeout));
        try
        {
            return await fetch.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (fetch.IsCompleted)
            {
                _inflight.TryRemove(new KeyValuePair<string, Task<string?>>(key, fetch));
            }
        }
    }

    private async Task<string?> FetchAsync(
        HttpMessageInvoker invoker, string key, string realm, string? service, string scope, AuthenticationHeaderValue? credentials, TimeSpan timeout)
    {
        await Task.Yield();
        if (!Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("http" or "https"))
        {
            Log.BadRealm(_logger, realm);
            return null;
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
            if (!response.IsSuccessStatusCode)
            {
                Log.TokenRefused(_logger, realmUri.Host, scope, (int)response.StatusCode);
                return null;
            }

            await using var body = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            using var json = await JsonDocument.ParseAsync(body, default, cts.Token).ConfigureAwait(false);
            var root = json.RootElement;
            var token = root.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
                : root.TryGetProperty("access_token", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
            if (string.IsNullOrEmpty(token))
            {
                Log.TokenMissing(_logger, realmUri.Host);
                return null;
            }

            var lifetime = root.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var seconds) && seconds > 0
                ? TimeSpan.FromSeconds(seconds) : DefaultLifetime;
            if (lifetime < DefaultLifetime)
            {
                lifetime = DefaultLifetime;
            }

            var issuedAt = root.TryGetProperty("issued_at", out var i) && i.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(i.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var issued)
                ? issued : _time.GetUtcNow();

            // A clock that disagrees with the token server must not make a fresh token look expired.
            var now = _time.GetUtcNow();
            if (issuedAt > now || issuedAt < now - lifetime)
            {
                issuedAt = now;
            }

            _tokens[key] = new CachedToken(token, issuedAt + lifetime - ExpirySkew);
            return token;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or JsonException or IOException)
        {
            Log.TokenFailed(_logger, realmUri.Host, ex.Message);
            return null;
        }
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
