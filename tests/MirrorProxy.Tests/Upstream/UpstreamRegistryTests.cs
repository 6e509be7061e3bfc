using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Upstream;

public sealed class UpstreamRegistryTests
{
    private const string Registry = "registry.test";
    private const string Auth = "auth.test";
    private const string BearerChallenge = "Bearer realm=\"https://auth.test/token\",service=\"registry.test\"";

    private static readonly UpstreamRequest ManifestRequest =
        new(HttpMethod.Get, "library/nginx", "manifests/latest") { Accept = "application/vnd.oci.image.index.v1+json" };

    [Fact]
    public async Task SendAsync_AnonymousUpstream_SendsOnePlainRequest()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json("{}"));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest with { Query = "n=2&last=b" }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.True(response.IsSuccess);
        Assert.NotNull(response.Message);
        Assert.Null(response.Detail);
        var request = Assert.Single(handler.Requests);
        Assert.Equal(HttpMethod.Get, request.Method);
        Assert.Equal("https://registry.test/v2/library/nginx/manifests/latest?n=2&last=b", request.Uri.ToString());
        Assert.Null(request.Authorization);
        Assert.Equal("application/vnd.oci.image.index.v1+json", request.Accept);
        Assert.Equal("mirrorproxy/1.0", request.UserAgent);
    }

    [Fact]
    public async Task SendAsync_BearerChallenge_FetchesTokenForPullScopeAndRetries()
    {
        var handler = BearerUpstream(token: "tkn");
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        var tokenRequest = Assert.Single(handler.RequestsTo(Auth));
        Assert.Equal("/token", tokenRequest.Uri.AbsolutePath);
        var query = QueryHelpers.ParseQuery(tokenRequest.Uri.Query);
        Assert.Equal("registry.test", query["service"].ToString());
        Assert.Equal("repository:library/nginx:pull", query["scope"].ToString());
        Assert.Null(tokenRequest.Authorization);

        var registryRequests = handler.RequestsTo(Registry);
        Assert.Equal(2, registryRequests.Count);
        Assert.Null(registryRequests[0].Authorization);
        Assert.Equal(new AuthenticationHeaderValue("Bearer", "tkn"), registryRequests[1].Authorization);
    }

    [Fact]
    public async Task SendAsync_BearerChallengeWithCredentials_SendsBasicCredentialsToTheRealm()
    {
        var handler = BearerUpstream(token: "tkn");
        using var upstream = Create(Options(o => { o.Username = "user"; o.Password = "pass"; }), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        var tokenRequest = Assert.Single(handler.RequestsTo(Auth));
        Assert.Equal(BasicUserPass, tokenRequest.Authorization);
        Assert.All(handler.RequestsTo(Registry), r => Assert.NotEqual("Basic", r.Authorization?.Scheme));
    }

    [Fact]
    public async Task SendAsync_PasswordFile_FirstLineIsThePassword()
    {
        using var temp = new TempDirectory();
        var file = temp.Combine("password");
        await File.WriteAllTextAsync(file, "pass  \nsecond line\n");
        var handler = BearerUpstream(token: "tkn");
        using var upstream = Create(Options(o => { o.Username = "user"; o.PasswordFile = file; }), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal(BasicUserPass, Assert.Single(handler.RequestsTo(Auth)).Authorization);
    }

    [Fact]
    public async Task SendAsync_SecondRequestForSameScope_ReusesTheCachedToken()
    {
        var handler = BearerUpstream(token: "tkn");
        using var upstream = Create(Options(), handler);

        using (var first = await upstream.SendAsync(ManifestRequest, CancellationToken.None))
        {
            Assert.Equal(UpstreamOutcome.Success, first.Outcome);
        }

        using var second = await upstream.SendAsync(ManifestRequest with { Path = "manifests/1.27" }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, second.Outcome);
        Assert.Single(handler.RequestsTo(Auth));
        var registryRequests = handler.RequestsTo(Registry);
        Assert.Equal(3, registryRequests.Count);
        Assert.Equal(new AuthenticationHeaderValue("Bearer", "tkn"), registryRequests[2].Authorization);
    }

    [Fact]
    public async Task SendAsync_OtherRepository_FetchesATokenForItsOwnScope()
    {
        var handler = BearerUpstream(token: "tkn");
        using var upstream = Create(Options(), handler);

        using (await upstream.SendAsync(ManifestRequest, CancellationToken.None))
        {
        }

        using var second = await upstream.SendAsync(ManifestRequest with { Repository = "bitnami/redis" }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, second.Outcome);
        var scopes = handler.RequestsTo(Auth).Select(r => QueryHelpers.ParseQuery(r.Uri.Query)["scope"].ToString());
        Assert.Equal(["repository:library/nginx:pull", "repository:bitnami/redis:pull"], scopes);
    }

    [Fact]
    public async Task SendAsync_TokenRefusedByRegistry_RefetchesOnceThenUnauthorized()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host == Auth
            ? FakeHttpHandler.Json("{\"token\":\"tkn\"}")
            : FakeHttpHandler.Challenge(BearerChallenge));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unauthorized, response.Outcome);
        Assert.Equal(3, handler.RequestsTo(Registry).Count);
        Assert.Equal(2, handler.RequestsTo(Auth).Count);
    }

    [Fact]
    public async Task SendAsync_TokenServiceRefuses_IsUnauthorizedNamingTheRealmHost()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host == Auth
            ? FakeHttpHandler.Status(HttpStatusCode.Forbidden)
            : FakeHttpHandler.Challenge(BearerChallenge));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unauthorized, response.Outcome);
        Assert.Contains("auth.test", response.Detail);
        Assert.Null(response.Message);
    }

    [Fact]
    public async Task SendAsync_BasicChallenge_RetriesWithConfiguredCredentials()
    {
        var handler = new FakeHttpHandler(request => request.Headers.Authorization is null
            ? FakeHttpHandler.Challenge("Basic realm=\"registry\"")
            : FakeHttpHandler.Json("{}"));
        using var upstream = Create(Options(o => { o.Username = "user"; o.Password = "pass"; }), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal(2, handler.Requests.Count);
        Assert.Null(handler.Requests[0].Authorization);
        Assert.Equal(BasicUserPass, handler.Requests[1].Authorization);
    }

    [Fact]
    public async Task SendAsync_BasicCredentialsRefused_StopsAfterOneRetry()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Challenge("Basic realm=\"registry\""));
        using var upstream = Create(Options(o => { o.Username = "user"; o.Password = "wrong"; }), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unauthorized, response.Outcome);
        Assert.Equal(2, handler.Requests.Count);
    }

    [Fact]
    public async Task SendAsync_BasicChallengeWithoutCredentials_IsUnauthorizedAfterOneRequest()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Challenge("Basic realm=\"registry\""));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unauthorized, response.Outcome);
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task SendAsync_RedirectToAnotherHost_DropsAuthorizationAndKeepsRange()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host switch
        {
            Auth => FakeHttpHandler.Json("{\"token\":\"tkn\"}"),
            Registry when request.Headers.Authorization is null => FakeHttpHandler.Challenge(BearerChallenge),
            Registry => FakeHttpHandler.Redirect("https://blobs.test/data/abc?sig=1"),
            _ => new HttpResponseMessage(HttpStatusCode.PartialContent) { Content = new ByteArrayContent(new byte[10]) },
        });
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Get, "library/nginx", "blobs/sha256:abc") { IsBlob = true, Range = "bytes=0-9" }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        var storage = Assert.Single(handler.RequestsTo("blobs.test"));
        Assert.Equal("/data/abc?sig=1", storage.PathAndQuery);
        Assert.Null(storage.Authorization);
        Assert.Equal("bytes=0-9", storage.Range);
        Assert.All(handler.RequestsTo(Registry), r => Assert.Equal("bytes=0-9", r.Range));
    }

    [Fact]
    public async Task SendAsync_RedirectToAnotherHostWithBasicCredentials_NeverSendsThemThere()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host switch
        {
            Registry when request.Headers.Authorization is null => FakeHttpHandler.Challenge("Basic realm=\"r\""),
            Registry => FakeHttpHandler.Redirect("https://blobs.test/data/abc", HttpStatusCode.Found),
            _ => FakeHttpHandler.Json("{}"),
        });
        using var upstream = Create(Options(o => { o.Username = "user"; o.Password = "pass"; }), handler);

        using var response = await upstream.SendAsync(new UpstreamRequest(HttpMethod.Get, "x", "blobs/sha256:abc") { IsBlob = true }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Null(Assert.Single(handler.RequestsTo("blobs.test")).Authorization);
    }

    [Fact]
    public async Task SendAsync_RelativeRedirectToSameHost_KeepsTheBearerToken()
    {
        var handler = new FakeHttpHandler(request => (request.RequestUri!.Host, request.RequestUri.AbsolutePath) switch
        {
            (Auth, _) => FakeHttpHandler.Json("{\"token\":\"tkn\"}"),
            (Registry, _) when request.Headers.Authorization is null => FakeHttpHandler.Challenge(BearerChallenge),
            (Registry, "/v2/library/nginx/blobs/sha256:abc") => FakeHttpHandler.Redirect("/storage/abc"),
            _ => FakeHttpHandler.Json("{}"),
        });
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(new UpstreamRequest(HttpMethod.Get, "library/nginx", "blobs/sha256:abc") { IsBlob = true }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        var last = handler.Requests[^1];
        Assert.Equal("https://registry.test/storage/abc", last.Uri.ToString());
        Assert.Equal(new AuthenticationHeaderValue("Bearer", "tkn"), last.Authorization);
    }

    [Fact]
    public async Task SendAsync_MoreThanTenRedirects_IsFailed()
    {
        var hop = 0;
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Redirect($"https://registry.test/hop/{Interlocked.Increment(ref hop)}", HttpStatusCode.Found));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Failed, response.Outcome);
        Assert.Contains("redirects", response.Detail);
        Assert.Equal(UpstreamRegistry.MaxRedirects + 1, handler.Requests.Count);
    }

    [Fact]
    public async Task SendAsync_ExactlyTenRedirects_AreFollowed()
    {
        var handler = new FakeHttpHandler(request =>
        {
            var path = request.RequestUri!.AbsolutePath;
            var hop = path.StartsWith("/hop/", StringComparison.Ordinal) ? int.Parse(path["/hop/".Length..]) : 0;
            return hop < UpstreamRegistry.MaxRedirects ? FakeHttpHandler.Redirect($"/hop/{hop + 1}", HttpStatusCode.MovedPermanently) : FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal(UpstreamRegistry.MaxRedirects + 1, handler.Requests.Count);
    }

    [Fact]
    public async Task SendAsync_RedirectToNonHttpScheme_IsFailed()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Redirect("ftp://files.test/blob"));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Failed, response.Outcome);
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task SendAsync_SeeOtherRedirectOfHead_StaysHead()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.AbsolutePath == "/other"
            ? FakeHttpHandler.Status(HttpStatusCode.OK)
            : FakeHttpHandler.Redirect("/other", HttpStatusCode.SeeOther));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest with { Method = HttpMethod.Head }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.All(handler.Requests, r => Assert.Equal(HttpMethod.Head, r.Method));
    }

    [Fact]
    public async Task SendAsync_UrlWithPathPrefix_PrefixesRequestPathAndTokenScope()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host switch
        {
            Auth => FakeHttpHandler.Json("{\"token\":\"tkn\"}"),
            _ when request.Headers.Authorization is null => FakeHttpHandler.Challenge("Bearer realm=\"https://auth.test/service/token\",service=\"harbor-registry\""),
            _ => FakeHttpHandler.Json("{}"),
        });
        using var upstream = Create(Options(o => o.Url = "https://harbor.test/dockerhub-proxy"), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal("dockerhub-proxy/", upstream.PathPrefix);
        Assert.All(handler.RequestsTo("harbor.test"), r => Assert.Equal("/v2/dockerhub-proxy/library/nginx/manifests/latest", r.PathAndQuery));
        var query = QueryHelpers.ParseQuery(Assert.Single(handler.RequestsTo(Auth)).Uri.Query);
        Assert.Equal("repository:dockerhub-proxy/library/nginx:pull", query["scope"].ToString());
        Assert.Equal("harbor-registry", query["service"].ToString());
    }

    [Theory]
    [InlineData("https://registry.test", "")]
    [InlineData("https://registry.test/", "")]
    [InlineData("https://registry.test/v2", "")]
    [InlineData("https://registry.test/v2/", "")]
    [InlineData("https://registry.test/a/b", "a/b/")]
    [InlineData("https://registry.test/a/v2/", "a/")]
    public void PathPrefix_Url_IsTheBasePathWithoutV2(string url, string prefix)
    {
        using var upstream = Create(Options(o => o.Url = url), new FakeHttpHandler(_ => FakeHttpHandler.Json("{}")));

        Assert.Equal(prefix, upstream.PathPrefix);
    }

    [Theory]
    [InlineData("docker.io", null, "nginx", "library/nginx")]
    [InlineData("docker.io", null, "bitnami/redis", "bitnami/redis")]
    [InlineData("DOCKER.IO", null, "nginx", "library/nginx")]
    [InlineData("docker.io", false, "nginx", "nginx")]
    [InlineData("ghcr.io", null, "nginx", "nginx")]
    [InlineData("ghcr.io", true, "nginx", "library/nginx")]
    public void NormalizeRepository_SingleSegmentName_GetsLibraryOnlyWhenEnabled(string name, bool? libraryPrefix, string repository, string expected)
    {
        using var upstream = Create(Options(o => { o.Name = name; o.LibraryPrefix = libraryPrefix; }), new FakeHttpHandler(_ => FakeHttpHandler.Json("{}")));

        Assert.Equal(expected, upstream.NormalizeRepository(repository));
    }

    [Fact]
    public void Names_NameAndAliases_AreAllListed()
    {
        using var upstream = Create(Options(o => o.Aliases = ["index.docker.io", "hub"]), new FakeHttpHandler(_ => FakeHttpHandler.Json("{}")));

        Assert.Equal(["registry.test", "index.docker.io", "hub"], upstream.Names);
        Assert.Equal("registry.test", upstream.Name);
    }

    [Fact]
    public async Task SendAsync_HandlerThrowsHttpRequestException_IsUnreachable()
    {
        var handler = new FakeHttpHandler((_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "connection refused", new IOException("refused")));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unreachable, response.Outcome);
        Assert.Null(response.Message);
        Assert.Contains("ConnectionError", response.Detail);
    }

    [Fact]
    public async Task SendAsync_UpstreamNeverAnswers_IsUnreachableAfterRequestTimeout()
    {
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(Options(o => o.RequestTimeout = TimeSpan.FromMilliseconds(200)), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unreachable, response.Outcome);
        Assert.Contains("no response headers within", response.Detail);
    }

    [Fact]
    public async Task SendAsync_BlobNeverAnswers_UsesTheBlobTimeout()
    {
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(Options(o => { o.RequestTimeout = TimeSpan.FromDays(1); o.BlobRequestTimeout = TimeSpan.FromMilliseconds(200); }), handler);

        using var response = await upstream.SendAsync(new UpstreamRequest(HttpMethod.Get, "x", "blobs/sha256:abc") { IsBlob = true }, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Unreachable, response.Outcome);
    }

    [Fact]
    public async Task SendAsync_CallerCancels_ThrowsInsteadOfReportingAnOutcome()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new FakeHttpHandler(async (_, cancellationToken) =>
        {
            entered.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return FakeHttpHandler.Json("{}");
        });
        using var upstream = Create(Options(), handler);
        using var caller = new CancellationTokenSource();

        var send = upstream.SendAsync(ManifestRequest, caller.Token).AsTask();
        await entered.Task;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
    }

    [Theory]
    [InlineData(HttpStatusCode.OK, UpstreamOutcome.Success)]
    [InlineData(HttpStatusCode.PartialContent, UpstreamOutcome.Success)]
    [InlineData(HttpStatusCode.NotFound, UpstreamOutcome.NotFound)]
    [InlineData(HttpStatusCode.Unauthorized, UpstreamOutcome.Unauthorized)]
    [InlineData(HttpStatusCode.Forbidden, UpstreamOutcome.Forbidden)]
    [InlineData(HttpStatusCode.TooManyRequests, UpstreamOutcome.RateLimited)]
    [InlineData(HttpStatusCode.InternalServerError, UpstreamOutcome.ServerError)]
    [InlineData(HttpStatusCode.BadGateway, UpstreamOutcome.ServerError)]
    [InlineData(HttpStatusCode.ServiceUnavailable, UpstreamOutcome.ServerError)]
    [InlineData(HttpStatusCode.BadRequest, UpstreamOutcome.Failed)]
    [InlineData(HttpStatusCode.NotModified, UpstreamOutcome.Failed)]
    public async Task SendAsync_FinalStatus_IsClassified(HttpStatusCode status, object outcome)
    {
        var expected = (UpstreamOutcome)outcome;
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Status(status));
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(expected, response.Outcome);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(expected, UpstreamResponse.Classify(status));
        if (expected == UpstreamOutcome.Success)
        {
            Assert.Null(response.Detail);
        }
        else
        {
            Assert.Equal($"HTTP {(int)status} from registry.test", response.Detail);
        }
    }

    [Fact]
    public async Task SendAsync_RateLimitedWithRetryAfter_ExposesTheDelay()
    {
        var handler = new FakeHttpHandler(_ =>
        {
            var response = FakeHttpHandler.Status(HttpStatusCode.TooManyRequests);
            response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(42));
            return response;
        });
        using var upstream = Create(Options(), handler);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.RateLimited, response.Outcome);
        Assert.Equal(TimeSpan.FromSeconds(42), response.RetryAfter);
    }

    [Fact]
    public async Task SendAsync_MirrorOffline_NeverDialsAndIsSkipped()
    {
        var handler = new FakeHttpHandler(_ => FakeHttpHandler.Json("{}"));
        using var upstream = TestUpstreams.Create(Options(), handler, offline: true);

        using var response = await upstream.SendAsync(ManifestRequest, CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Skipped, response.Outcome);
        Assert.Empty(handler.Requests);
    }

    private static readonly AuthenticationHeaderValue BasicUserPass = new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass")));

    /// <summary>A registry that wants a bearer token from auth.test and accepts exactly <paramref name="token"/>.</summary>
    private static FakeHttpHandler BearerUpstream(string token) => new(request => request.RequestUri!.Host switch
    {
        Auth => FakeHttpHandler.Json($$"""{"token":"{{token}}","expires_in":300}"""),
        _ when request.Headers.Authorization is { Scheme: "Bearer" } auth && auth.Parameter == token => FakeHttpHandler.Json("{}"),
        _ => FakeHttpHandler.Challenge(BearerChallenge),
    });

    private static UpstreamOptions Options(Action<UpstreamOptions>? configure = null)
    {
        var options = new UpstreamOptions { Name = Registry, Url = "https://registry.test" };
        configure?.Invoke(options);
        return options;
    }

    private static UpstreamRegistry Create(UpstreamOptions options, FakeHttpHandler handler) => TestUpstreams.Create(options, handler);

    [Fact]
    public async Task SendAsync_TokenWithStringExpiresIn_IsUsed()
    {
        var handler = new FakeHttpHandler(request => request.RequestUri!.Host switch
        {
            "auth.test" => FakeHttpHandler.Json("""{"token":"tkn","expires_in":"300"}"""),
            _ when request.Headers.Authorization is null => FakeHttpHandler.Challenge("Bearer realm=\"https://auth.test/token\",service=\"registry.test\""),
            _ => FakeHttpHandler.Json("{}"),
        });
        using var upstream = TestUpstreams.Create(new UpstreamOptions { Name = "registry.test", Url = "https://registry.test" }, handler);

        using var response = await upstream.SendAsync(new UpstreamRequest(HttpMethod.Get, "x", "manifests/latest"), CancellationToken.None);

        Assert.Equal(UpstreamOutcome.Success, response.Outcome);
        Assert.Equal("Bearer tkn", handler.Requests[^1].Authorization!.ToString());
    }
}
