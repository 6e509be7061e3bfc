using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Upstream;

public sealed class TokenCacheTests
{
    private const string Realm = "https://auth.test/token";
    private const string Service = "registry.test";
    private const string Scope = "repository:library/nginx:pull";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly ManualTimeProvider _time = new();

    [Fact]
    public async Task GetAsync_ExpiresIn_TokenIsCachedUntilExpiryLessSkew()
    {
        var (handler, invoker) = TokenServer(n => $$"""{"token":"t{{n}}","expires_in":300}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t1", await GetAsync(cache, invoker));
        _time.Advance(TimeSpan.FromSeconds(289));
        Assert.True(cache.TryGetCached(Realm, Service, Scope, out var cached));
        Assert.Equal("t1", cached);
        Assert.Equal("t1", await GetAsync(cache, invoker));

        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
        Assert.Equal("t2", await GetAsync(cache, invoker));
        Assert.Equal(2, handler.Requests.Count);
    }

    [Fact]
    public async Task GetAsync_AccessTokenField_IsAccepted()
    {
        var (_, invoker) = TokenServer(_ => """{"access_token":"oauth","expires_in":300}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("oauth", await GetAsync(cache, invoker));
    }

    [Fact]
    public async Task GetAsync_BothTokenFields_PrefersToken()
    {
        var (_, invoker) = TokenServer(_ => """{"access_token":"oauth","token":"docker"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("docker", await GetAsync(cache, invoker));
    }

    [Theory]
    [InlineData("""{"token":"t","expires_in":5}""")]
    [InlineData("""{"token":"t","expires_in":0}""")]
    [InlineData("""{"token":"t","expires_in":-100}""")]
    [InlineData("""{"token":"t"}""")]
    public async Task GetAsync_ShortOrMissingLifetime_IsRaisedToSixtySeconds(string answer)
    {
        var (_, invoker) = TokenServer(_ => answer);
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t", await GetAsync(cache, invoker));

        _time.Advance(TimeSpan.FromSeconds(49));
        Assert.True(cache.TryGetCached(Realm, Service, Scope, out _));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
    }

    [Fact]
    public async Task GetAsync_IssuedAtInThePast_CountsTheLifetimeFromIssue()
    {
        var issued = _time.GetUtcNow().AddSeconds(-100).ToString("o");
        var (_, invoker) = TokenServer(_ => $$"""{"token":"t","expires_in":300,"issued_at":"{{issued}}"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t", await GetAsync(cache, invoker));

        _time.Advance(TimeSpan.FromSeconds(189));
        Assert.True(cache.TryGetCached(Realm, Service, Scope, out _));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
    }

    [Fact]
    public async Task GetAsync_IssuedAtInTheFuture_CountsFromNow()
    {
        var issued = _time.GetUtcNow().AddHours(2).ToString("o");
        var (_, invoker) = TokenServer(_ => $$"""{"token":"t","expires_in":300,"issued_at":"{{issued}}"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t", await GetAsync(cache, invoker));

        _time.Advance(TimeSpan.FromSeconds(289));
        Assert.True(cache.TryGetCached(Realm, Service, Scope, out _));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
    }

    [Fact]
    public async Task GetAsync_ConcurrentRequestsForOneScope_ShareOneFetch()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new FakeHttpHandler(async (_, _) =>
        {
            await release.Task;
            return FakeHttpHandler.Json("""{"token":"shared","expires_in":300}""");
        });
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);

        var waiters = Enumerable.Range(0, 8).Select(_ => GetAsync(cache, invoker)).ToList();
        Assert.All(waiters, w => Assert.False(w.IsCompleted));
        release.SetResult();
        var tokens = await Task.WhenAll(waiters);

        Assert.All(tokens, t => Assert.Equal("shared", t));
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task GetAsync_DifferentScopes_AreFetchedAndCachedSeparately()
    {
        var (handler, invoker) = TokenServer(n => $$"""{"token":"t{{n}}","expires_in":300}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t1", await Token(cache.GetAsync(invoker, Realm, Service, "repository:a:pull", null, Timeout, CancellationToken.None)));
        Assert.Equal("t2", await Token(cache.GetAsync(invoker, Realm, Service, "repository:b:pull", null, Timeout, CancellationToken.None)));
        Assert.Equal("t1", await Token(cache.GetAsync(invoker, Realm, Service, "repository:a:pull", null, Timeout, CancellationToken.None)));

        Assert.Equal(2, handler.Requests.Count);
    }

    [Fact]
    public async Task GetAsync_Request_CarriesServiceScopeAndCredentials()
    {
        var (handler, invoker) = TokenServer(_ => """{"token":"t"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);
        var credentials = new AuthenticationHeaderValue("Basic", "dXNlcjpwYXNz");

        await Token(cache.GetAsync(invoker, "https://auth.test/token?account=me", Service, Scope, credentials, Timeout, CancellationToken.None));

        var request = Assert.Single(handler.Requests);
        Assert.Equal(HttpMethod.Get, request.Method);
        Assert.Equal("/token", request.Uri.AbsolutePath);
        var query = QueryHelpers.ParseQuery(request.Uri.Query);
        Assert.Equal("me", query["account"].ToString());
        Assert.Equal(Service, query["service"].ToString());
        Assert.Equal(Scope, query["scope"].ToString());
        Assert.Equal(credentials, request.Authorization);
    }

    [Fact]
    public async Task GetAsync_NoService_SendsOnlyTheScope()
    {
        var (handler, invoker) = TokenServer(_ => """{"token":"t"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal("t", await Token(cache.GetAsync(invoker, Realm, null, Scope, null, Timeout, CancellationToken.None)));

        var query = QueryHelpers.ParseQuery(Assert.Single(handler.Requests).Uri.Query);
        Assert.Equal(Scope, query["scope"].ToString());
        Assert.Single(query["scope"]);
        Assert.False(query.ContainsKey("service"));
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized, "{}")]
    [InlineData(HttpStatusCode.InternalServerError, "{}")]
    [InlineData(HttpStatusCode.OK, "{}")]
    [InlineData(HttpStatusCode.OK, """{"token":""}""")]
    [InlineData(HttpStatusCode.OK, """{"token":42}""")]
    [InlineData(HttpStatusCode.OK, "not json")]
    public async Task GetAsync_RefusedOrUnusableAnswer_IsNullAndNotCached(HttpStatusCode status, string answer)
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json(answer, status));
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Null(await GetAsync(cache, invoker));
        Assert.Null(await GetAsync(cache, invoker));

        Assert.Equal(2, handler.Requests.Count);
        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
    }

    [Theory]
    [InlineData("ftp://auth.test/token")]
    [InlineData("/token")]
    [InlineData("not a url")]
    public async Task GetAsync_RealmNotHttp_IsNullWithoutARequest(string realm)
    {
        var (handler, invoker) = TokenServer(_ => """{"token":"t"}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Null(await Token(cache.GetAsync(invoker, realm, Service, Scope, null, Timeout, CancellationToken.None)));
        Assert.Empty(handler.Requests);
    }

    [Fact]
    public async Task GetAsync_TokenServiceNeverAnswers_IsNullAfterTheTimeout()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            entered.TrySetResult();
            await Task.Delay(System.Threading.Timeout.Infinite, cancellationToken);
            return FakeHttpHandler.Json("{}");
        });
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);

        var pending = GetAsync(cache, invoker);
        await entered.Task;
        Assert.False(pending.IsCompleted);
        _time.Advance(Timeout);

        Assert.Null(await pending);
    }

    [Fact]
    public async Task Invalidate_CachedToken_NextGetFetchesAgain()
    {
        var (handler, invoker) = TokenServer(n => $$"""{"token":"t{{n}}","expires_in":300}""");
        var cache = new TokenCache(_time, NullLogger.Instance);
        Assert.Equal("t1", await GetAsync(cache, invoker));

        cache.Invalidate(Realm, Service, Scope);

        Assert.False(cache.TryGetCached(Realm, Service, Scope, out _));
        Assert.Equal("t2", await GetAsync(cache, invoker));
        Assert.Equal(2, handler.Requests.Count);
    }

    private static async Task<string?> GetAsync(TokenCache cache, HttpMessageInvoker invoker) =>
        (await cache.GetAsync(invoker, Realm, Service, Scope, null, Timeout, CancellationToken.None)).Token;

    private static async Task<string?> Token(ValueTask<TokenResult> result) => (await result).Token;

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized, "{}", "Refused")]
    [InlineData(HttpStatusCode.Forbidden, "{}", "Refused")]
    [InlineData(HttpStatusCode.TooManyRequests, "{}", "RateLimited")]
    [InlineData(HttpStatusCode.BadGateway, "{}", "ServerError")]
    [InlineData(HttpStatusCode.OK, "<html><body>Log in to the ship's Wi-Fi</body></html>", "Unusable")]
    [InlineData(HttpStatusCode.OK, "{}", "Unusable")]
    public async Task GetAsync_FailedFetch_SaysWhy(HttpStatusCode status, string answer, string expected)
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json(answer, status));
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);

        var result = await cache.GetAsync(invoker, Realm, Service, Scope, null, Timeout, CancellationToken.None);

        Assert.Equal(Enum.Parse<TokenOutcome>(expected), result.Outcome);
        Assert.Null(result.Token);
        Assert.Contains("auth.test", result.Detail);
    }

    [Fact]
    public async Task GetAsync_TokenServiceUnreachable_IsUnreachable()
    {
        var handler = new FakeHttpHandler(_ => throw new HttpRequestException(HttpRequestError.ConnectionError, "connection refused"));
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);

        var result = await cache.GetAsync(invoker, Realm, Service, Scope, null, Timeout, CancellationToken.None);

        Assert.Equal(TokenOutcome.Unreachable, result.Outcome);
    }

    [Fact]
    public async Task GetAsync_EndlessRandomScopes_KeepsAtMostTheCap()
    {
        var (handler, invoker) = TokenServer(n => $$"""{"token":"t{{n}}","expires_in":3600}""");
        var cache = new TokenCache(_time, NullLogger.Instance);

        for (var i = 0; i < TokenCache.MaxTokens * 3; i++)
        {
            Assert.Equal(TokenOutcome.Ok, (await cache.GetAsync(invoker, Realm, Service, $"repository:random/{i}:pull", null, Timeout, CancellationToken.None)).Outcome);
            Assert.True(cache.Count <= TokenCache.MaxTokens, $"{cache.Count} tokens after {i + 1} scopes");
        }

        Assert.Equal(TokenCache.MaxTokens * 3, handler.Requests.Count);
    }

    [Fact]
    public async Task GetAsync_ManyScopesAtOnce_NeverFails_AndStaysBounded()
    {
        var (_, invoker) = TokenServer(n => $$"""{"token":"t{{n}}","expires_in":3600}""");
        var cache = new TokenCache(_time, NullLogger.Instance);
        var next = -1;

        // Clients asking for random names in parallel: the cache trims while others add to it.
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var results = new List<TokenOutcome>();
            int i;
            while ((i = Interlocked.Increment(ref next)) < TokenCache.MaxTokens * 8)
            {
                results.Add((await cache.GetAsync(invoker, Realm, Service, $"repository:random/{i}:pull", null, Timeout, CancellationToken.None)).Outcome);
            }

            return results;
        })));

        Assert.All(outcomes.SelectMany(o => o), outcome => Assert.Equal(TokenOutcome.Ok, outcome));

        // What was added while one fetch trimmed is trimmed by the next.
        Assert.Equal(TokenOutcome.Ok, (await cache.GetAsync(invoker, Realm, Service, "repository:random/last:pull", null, Timeout, CancellationToken.None)).Outcome);
        Assert.True(cache.Count <= TokenCache.MaxTokens, $"{cache.Count} tokens");
    }

    /// <summary>A token service answering the n-th request (from 1) with <paramref name="answer"/>(n).</summary>
    private static (FakeHttpHandler Handler, HttpMessageInvoker Invoker) TokenServer(Func<int, string> answer)
    {
        var count = 0;
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json(answer(Interlocked.Increment(ref count))));
        return (handler, new HttpMessageInvoker(handler));
    }

    [Theory]
    [InlineData("""{"token":"t","expires_in":"300"}""", "t")]
    [InlineData("""{"token":"t","expires_in":{"nested":1}}""", "t")]
    [InlineData("""[]""", null)]
    [InlineData("""null""", null)]
    [InlineData("""{"token":42}""", null)]
    public async Task GetAsync_TokenAnswerOfUnexpectedShape_ReturnsTokenOrNull_NeverThrows(string answer, string? expected)
    {
        var (_, invoker) = TokenServer(_ => answer);
        var cache = new TokenCache(_time, NullLogger.Instance);

        Assert.Equal(expected, await GetAsync(cache, invoker));
    }

    [Fact]
    public async Task GetAsync_OnlyWaiterCancelledDuringFetch_ALaterCallAfterExpiryFetchesAFreshToken()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var count = 0;
        var handler = new FakeHttpHandler(async (_, _) =>
        {
            var n = Interlocked.Increment(ref count);
            if (n == 1)
            {
                await release.Task;
            }

            return FakeHttpHandler.Json($$"""{"token":"t{{n}}","expires_in":300}""");
        });
        using var invoker = new HttpMessageInvoker(handler);
        var cache = new TokenCache(_time, NullLogger.Instance);
        using var caller = new CancellationTokenSource();

        var first = cache.GetAsync(invoker, Realm, Service, Scope, null, Timeout, caller.Token).AsTask();
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        release.SetResult();
        for (var i = 0; i < 1000 && !cache.TryGetCached(Realm, Service, Scope, out _); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(cache.TryGetCached(Realm, Service, Scope, out var abandoned));
        Assert.Equal("t1", abandoned);
        _time.Advance(TimeSpan.FromSeconds(291));

        Assert.Equal("t2", await GetAsync(cache, invoker));
    }
}
