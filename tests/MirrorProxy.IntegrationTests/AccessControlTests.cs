using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Network;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// Who may pull what, through the real program: a private upstream (a real registry behind htpasswd, whose
/// credentials the mirror holds) next to the public lab registry, users in an htpasswd file made by
/// <c>htpasswd -B</c>, rules, and real clients (containerd, skopeo). Every byte of private content must stay
/// behind authentication, on every route, and no password may leak into any output.
/// </summary>
public sealed class AccessControlTests : IAsyncLifetime
{
    private static readonly RegistryCredentials UpstreamCredentials = new("robot-mirror", "Upstream-S3cret-9f2c");
    private static readonly RegistryCredentials Alice = new("alice", "Alice-Pass-5b1e");
    private static readonly RegistryCredentials Bob = new("bob", "Bob-Pass-77ad");
    private static readonly RegistryCredentials WrongAlice = new("alice", "Not-Her-Pass-0c3d");
    private const string AdminToken = "Admin-Token-3e8b5a";

    private readonly TempDirectory _work = new("access");
    private TestRegistry _public = null!;
    private TestRegistry _private = null!;
    private TestImage _publicImage = null!;
    private TestImage _privateImage = null!;
    private TestImage _otherImage = null!;
    private MirrorProcess _mirror = null!;

    public async Task InitializeAsync()
    {
        var publicRegistry = TestRegistry.StartAsync();
        var privateRegistry = TestRegistry.StartAsync(new TestRegistryOptions { BasicAuth = UpstreamCredentials });
        _public = await publicRegistry;
        _private = await privateRegistry;
        _publicImage = await OciImageFactory.PushDockerImageAsync(_public, "team/app", "1", "access-public");
        _privateImage = await OciImageFactory.PushMultiArchImageAsync(_private, "private/app", "2", "access-private");
        _otherImage = await OciImageFactory.PushDockerImageAsync(_private, "other/app", "1", "access-other");
        _mirror = await StartMirrorAsync(ConfigFile());
    }

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        await _public.DisposeAsync();
        await _private.DisposeAsync();
        _work.Dispose();
    }

    private string ConfigFile(bool allowRemoteWithoutToken = false, string? adminListen = null)
    {
        var htpasswd = _work.Combine("htpasswd");
        if (!File.Exists(htpasswd))
        {
            var lines = new StringBuilder();
            foreach (var user in new[] { Alice, Bob })
            {
                var result = ProcessRunner.RunAsync("htpasswd", ["-Bbn", user.Username, user.Password], TimeSpan.FromSeconds(30), CancellationToken.None).GetAwaiter().GetResult();
                result.EnsureSuccess();
                lines.AppendLine(result.StandardOutput.Trim());
            }

            File.WriteAllText(htpasswd, lines.ToString());
        }

        var config = new
        {
            MirrorProxy = new
            {
                TagTtl = "00:00:00",
                Upstreams = new object[]
                {
                    new { Name = "docker.io", Url = _public.BaseUri.ToString().TrimEnd('/') },
                    new { Name = "harbor.test", Url = _private.BaseUri.ToString().TrimEnd('/'), UpstreamCredentials.Username, UpstreamCredentials.Password },
                },
                Auth = new
                {
                    HtpasswdFile = htpasswd,
                    Rules = new object[]
                    {
                        new { Users = new[] { "alice" }, Upstream = "harbor.test", Repository = "private/**" },
                        new { Users = new[] { "bob" }, Upstream = "harbor.test", Repository = "other/**" },
                    },
                },
                Admin = allowRemoteWithoutToken
                    ? (object)new { AllowRemote = true }
                    : new { AllowRemote = true, Token = AdminToken, Listen = adminListen },
            },
            Logging = new { LogLevel = new { Default = "Debug", Microsoft = "Information" } },
        };
        var path = _work.Combine($"mirror-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(config));
        return path;
    }

    private Task<MirrorProcess> StartMirrorAsync(string config) =>
        MirrorProcess.StartAsync(_work.Combine("cache-" + Guid.NewGuid().ToString("N")), ["--config", config, "--access-log"]);

    private HttpRequestMessage Get(string path, RegistryCredentials? credentials = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json");
        if (credentials is not null)
        {
            request.Headers.Authorization = credentials.ToBasicAuthenticationHeader();
        }

        return request;
    }

    private async Task<HttpStatusCode> StatusAsync(string path, RegistryCredentials? credentials = null)
    {
        using var response = await _mirror.Client.SendAsync(Get(path, credentials));
        return response.StatusCode;
    }

    private string PrivateManifestPath => $"/v2/{_privateImage.Repository}/manifests/{_privateImage.Tag}?ns=harbor.test";

    [Fact]
    public async Task PrivateImage_OnlyAnAllowedUserPullsIt_OthersGet401Or404()
    {
        using (var anonymous = await _mirror.Client.SendAsync(Get(PrivateManifestPath)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("Basic", anonymous.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Equal("UNAUTHORIZED", await ErrorCodeAsync(anonymous));
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(PrivateManifestPath, WrongAlice));
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(PrivateManifestPath, Bob));
        using (var allowed = await _mirror.Client.SendAsync(Get(PrivateManifestPath, Alice)))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
            Assert.Equal(_privateImage.ManifestBytes, await allowed.Content.ReadAsByteArrayAsync());
        }

        // Bob's own repository, and the public one for everyone.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync($"/v2/{_otherImage.Repository}/manifests/{_otherImage.Tag}?ns=harbor.test", Bob));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync($"/v2/{_publicImage.Repository}/manifests/{_publicImage.Tag}?ns=docker.io"));
    }

    [Fact]
    public async Task PrivateDigest_ThroughThePublicRoute_IsNeverServed_ByBlobOrByManifest()
    {
        // Alice brings the private image in, every byte of it.
        foreach (var digest in _privateImage.Manifests.Select(m => m.Digest).Prepend(_privateImage.Digest))
        {
            Assert.Equal(HttpStatusCode.OK, await StatusAsync($"/v2/{_privateImage.Repository}/manifests/{digest}?ns=harbor.test", Alice));
        }

        foreach (var blob in _privateImage.Blobs)
        {
            Assert.Equal(HttpStatusCode.OK, await StatusAsync($"/v2/{_privateImage.Repository}/blobs/{blob.Digest}?ns=harbor.test", Alice));
        }

        // Knowing the digests gets an anonymous client nothing through the public upstream's route (nor by prefix).
        foreach (var blob in _privateImage.Blobs)
        {
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync($"/v2/{_publicImage.Repository}/blobs/{blob.Digest}?ns=docker.io"));
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync($"/v2/docker.io/{_publicImage.Repository}/blobs/{blob.Digest}"));
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync($"/v2/{_publicImage.Repository}/blobs/{blob.Digest}"));
        }

        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync($"/v2/{_publicImage.Repository}/manifests/{_privateImage.Digest}?ns=docker.io"));
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync($"/v2/{_publicImage.Repository}/manifests/{_privateImage.Manifests[0].Digest}?ns=docker.io"));

        // Once the public upstream holds the same blob too, it is public content and served through its route.
        var shared = _privateImage.Blobs.First(b => b.Content.Length < 1 << 20);
        await OciImageFactory.PushBlobAsync(_public.BaseUri, _publicImage.Repository, shared.Content, credentials: null);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync($"/v2/{_publicImage.Repository}/blobs/{shared.Digest}?ns=docker.io"));
    }

    [Fact]
    public async Task TagListsAndImageChecks_OfPrivateRepositories_RevealNothingToOthers()
    {
        var tags = $"/v2/{_privateImage.Repository}/tags/list?ns=harbor.test";
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(tags));
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(tags, Bob));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(tags, Alice));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync($"/v2/{_privateImage.Repository}/referrers/{_privateImage.Digest}?ns=harbor.test"));

        // Alice pulls it, so it is complete in the cache; the check tells only her.
        (await Skopeo.CopyAsync($"docker://{_mirror.BaseUri.Authority}/harbor.test/{_privateImage.Repository}:{_privateImage.Tag}", $"oci:{_work.Combine("alice")}:x",
            all: true, new SkopeoCopyOptions { SourceCredentials = Alice })).EnsureSuccess();
        var reference = $"harbor.test/{_privateImage.Repository}:{_privateImage.Tag}";
        var anonymous = await CheckAsync(reference, null);
        var bob = await CheckAsync(reference, Bob);
        var alice = await CheckAsync(reference, Alice);

        Assert.Equal("missing", anonymous.GetProperty("status").GetString());
        Assert.Empty(anonymous.GetProperty("content").EnumerateArray());
        Assert.Equal("missing", bob.GetProperty("status").GetString());
        Assert.Empty(bob.GetProperty("content").EnumerateArray());
        Assert.Equal("ok", alice.GetProperty("status").GetString());
        Assert.NotEmpty(alice.GetProperty("content").EnumerateArray());
    }

    [Fact]
    public async Task RealClients_CtrWithUserAndSkopeoWithCreds_PullThePrivateImage_AnonymousSkopeoStillPullsPublic()
    {
        var hosts = _work.Combine("hosts");
        ContainerdDaemon.WriteHostsToml(hosts, "harbor.test", _mirror.BaseUri, mirrorOnly: true);
        await using (var containerd = await ContainerdDaemon.StartAsync())
        {
            var reference = $"harbor.test/{_privateImage.Repository}:{_privateImage.Tag}";
            Assert.False((await containerd.PullAsync(reference, hosts, "linux/amd64", credentials: null, TimeSpan.FromSeconds(60))).Succeeded);
            (await containerd.PullAsync(reference, hosts, "linux/amd64", Alice, TimeSpan.FromSeconds(120))).EnsureSuccess();
            Assert.Contains(_privateImage.Digest, (await containerd.ListContentAsync()).Select(c => c.Digest));
        }

        (await Skopeo.CopyAsync($"docker://{_mirror.BaseUri.Authority}/harbor.test/{_otherImage.Repository}:{_otherImage.Tag}", $"oci:{_work.Combine("bob")}:x",
            all: true, new SkopeoCopyOptions { SourceCredentials = Bob })).EnsureSuccess();
        Assert.False((await Skopeo.CopyAsync($"docker://{_mirror.BaseUri.Authority}/harbor.test/{_otherImage.Repository}:{_otherImage.Tag}",
            $"oci:{_work.Combine("anonymous-private")}:x", all: true)).Succeeded);
        (await Skopeo.CopyAsync($"docker://{_mirror.BaseUri.Authority}/docker.io/{_publicImage.Repository}:{_publicImage.Tag}", $"oci:{_work.Combine("anonymous")}:x",
            all: true)).EnsureSuccess();
    }

    [Fact]
    public async Task Admin_RemoteCallersNeedTheToken_AndAllowRemoteWithoutATokenRefusesToStart()
    {
        await using var network = await NetworkNamespace.CreateAsync();
        var port = LoopbackPorts.GetFreePort();
        await using var mirror = await StartMirrorAsync(ConfigFile(adminListen: $"{network.OuterAddress}:{port}"));
        using var remote = new HttpClient(network.CreateInsideHandler()) { BaseAddress = new Uri($"http://{network.OuterAddress}:{port}"), Timeout = TimeSpan.FromSeconds(20) };

        using (var withoutToken = await remote.PutAsync("/admin/offline?enabled=true", null))
        {
            Assert.Equal(HttpStatusCode.Forbidden, withoutToken.StatusCode);
        }

        using (var wrongToken = new HttpRequestMessage(HttpMethod.Put, "/admin/offline?enabled=true"))
        {
            wrongToken.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "guess");
            Assert.Equal(HttpStatusCode.Forbidden, (await remote.SendAsync(wrongToken)).StatusCode);
        }

        using (var withToken = new HttpRequestMessage(HttpMethod.Get, "/admin/upstreams"))
        {
            withToken.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
            using var answer = await remote.SendAsync(withToken);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var body = await answer.Content.ReadAsStringAsync();
            Assert.Contains("harbor.test", body, StringComparison.Ordinal);
            Assert.DoesNotContain(UpstreamCredentials.Password, body, StringComparison.Ordinal);
            Assert.DoesNotContain(UpstreamCredentials.Username, body, StringComparison.Ordinal);
        }

        // The admin endpoints live on their own listener only; loopback callers need nothing there.
        Assert.Equal(HttpStatusCode.NotFound, (await mirror.Client.GetAsync("/admin/upstreams")).StatusCode);

        var refused = await ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll"), "serve", "--listen", "127.0.0.1:0",
            "--cache", _work.Combine("refused"), "--config", ConfigFile(allowRemoteWithoutToken: true)], TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("MirrorProxy:Admin:AllowRemote", refused.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoOutput_EverCarriesAPassword()
    {
        // Every path that handles credentials: right, wrong, upstream, tokens, errors, logs at Debug, the access log.
        await StatusAsync(PrivateManifestPath, Alice);
        await StatusAsync(PrivateManifestPath, WrongAlice);
        await StatusAsync(PrivateManifestPath, Bob);
        await StatusAsync($"/v2/{_privateImage.Repository}/manifests/missing-tag?ns=harbor.test", Alice);
        await StatusAsync($"/v2/{_privateImage.Repository}/manifests/%0d%0aforged-line?ns=harbor.test", Alice);
        await StatusAsync("/v2/", WrongAlice);
        var outputs = new List<string>();
        foreach (var path in new[] { "/metrics", "/readyz", "/admin/upstreams", "/admin/pins", PrivateManifestPath, $"/v2/{_privateImage.Repository}/tags/list?ns=harbor.test" })
        {
            using var response = await _mirror.Client.SendAsync(Get(path, path.StartsWith("/v2", StringComparison.Ordinal) ? WrongAlice : null));
            outputs.Add(response.Headers + "\n" + response.Content.Headers + "\n" + await response.Content.ReadAsStringAsync());
        }

        using (var check = await _mirror.Client.PostAsync("/status/images", new StringContent($$"""{"images":["harbor.test/{{_privateImage.Repository}}:{{_privateImage.Tag}}"]}""", Encoding.UTF8, "application/json")))
        {
            outputs.Add(await check.Content.ReadAsStringAsync());
        }

        await _mirror.StopAsync();
        outputs.Add(_mirror.Output.ToString());

        foreach (var secret in new[] { UpstreamCredentials.Password, Alice.Password, Bob.Password, WrongAlice.Password, AdminToken,
                     Convert.ToBase64String(Encoding.UTF8.GetBytes(UpstreamCredentials.UserColonPassword)), Convert.ToBase64String(Encoding.UTF8.GetBytes(Alice.UserColonPassword)) })
        {
            Assert.All(outputs, output => Assert.DoesNotContain(secret, output, StringComparison.Ordinal));
        }

        // A CR LF in a path does not forge a log line.
        Assert.DoesNotContain(_mirror.Output.ToString().Split('\n'), line => line.StartsWith("forged-line", StringComparison.Ordinal));
    }

    private async Task<JsonElement> CheckAsync(string reference, RegistryCredentials? credentials)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/status/images") { Content = new StringContent($$"""{"images":["{{reference}}"],"platforms":"all"}""", Encoding.UTF8, "application/json") };
        if (credentials is not null)
        {
            request.Headers.Authorization = credentials.ToBasicAuthenticationHeader();
        }

        using var response = await _mirror.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return json.RootElement.GetProperty("images")[0].Clone();
    }

    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return json.RootElement.GetProperty("errors")[0].GetProperty("code").GetString();
    }
}
