using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// Who may read which Helm repository, through the real program: a private chart repository (a static server
/// behind Basic auth, whose credentials the mirror holds) beside a public one, users in an htpasswd file made by
/// <c>htpasswd -B</c>, and rules that name the Helm repository where they would name an upstream. Clients send
/// what Helm sends (<c>helm repo add --username --password</c> makes it send Basic credentials with every request).
/// </summary>
public sealed class HelmAccessControlTests : IAsyncLifetime
{
    private static readonly RegistryCredentials RepositoryCredentials = new("robot-charts", "Charts-S3cret-41d7");
    private static readonly RegistryCredentials Alice = new("alice", "Alice-Pass-5b1e");
    private static readonly RegistryCredentials Bob = new("bob", "Bob-Pass-77ad");
    private static readonly RegistryCredentials WrongAlice = new("alice", "Not-Her-Pass-0c3d");

    private readonly TempDirectory _work = new("helm-access");
    private readonly Dictionary<string, byte[]> _archives = new(StringComparer.Ordinal);
    private StaticChartServer _private = null!;
    private StaticChartServer _public = null!;
    private MirrorProcess _mirror = null!;

    public async Task InitializeAsync()
    {
        _private = await StaticChartServer.StartAsync();
        _private.RequiredAuthorization = RepositoryCredentials.ToBasicAuthenticationHeader().ToString();
        _public = await StaticChartServer.StartAsync();
        foreach (var (name, version) in new[] { ("app", "1.0.0"), ("tools", "2.0.0"), ("community", "0.1.0") })
        {
            _archives[name] = StaticChartServer.ChartArchive(name, version);
        }

        // The private repository's charts; the public one lists the same app archive (same digest) without having
        // the file, and a chart of its own.
        _private.Put("/vendor/index.yaml", Index(("app", "1.0.0"), ("tools", "2.0.0")));
        _private.Put("/vendor/app-1.0.0.tgz", _archives["app"]);
        _private.Put("/vendor/tools-2.0.0.tgz", _archives["tools"]);
        _public.Put("/pub/index.yaml", Index(("app", "1.0.0"), ("community", "0.1.0")));
        _public.Put("/pub/community-0.1.0.tgz", _archives["community"]);
        _mirror = await MirrorProcess.StartAsync(_work.Combine("cache"), ["--config", ConfigFile(), "--access-log"]);
    }

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        await _private.DisposeAsync();
        await _public.DisposeAsync();
        _work.Dispose();
    }

    private byte[] Index(params (string Name, string Version)[] charts)
    {
        var index = new StringBuilder("apiVersion: v1\nentries:\n");
        foreach (var (name, version) in charts)
        {
            index.Append($"  {name}:\n  - apiVersion: v2\n    name: {name}\n    version: {version}\n    digest: {Convert.ToHexStringLower(SHA256.HashData(_archives[name]))}\n" +
                $"    urls:\n    - {name}-{version}.tgz\n");
        }

        return Encoding.UTF8.GetBytes(index.Append("generated: \"2024-05-06T07:08:09Z\"\n").ToString());
    }

    private string ConfigFile()
    {
        var users = new StringBuilder();
        foreach (var user in new[] { Alice, Bob })
        {
            var result = ProcessRunner.RunAsync("htpasswd", ["-Bbn", user.Username, user.Password], TimeSpan.FromSeconds(30), CancellationToken.None).GetAwaiter().GetResult();
            result.EnsureSuccess();
            users.AppendLine(result.StandardOutput.Trim());
        }

        var htpasswd = _work.Combine("htpasswd");
        File.WriteAllText(htpasswd, users.ToString());
        var config = new
        {
            MirrorProxy = new
            {
                Upstreams = new object[] { new { Name = "docker.io", Url = "http://127.0.0.1:9" } },
                HelmRepositories = new object[]
                {
                    new { Name = "vendor", Url = new Uri(_private.BaseUri, "/vendor").ToString(), RepositoryCredentials.Username, RepositoryCredentials.Password, IndexTtl = "00:00:00" },
                    new { Name = "community", Url = new Uri(_public.BaseUri, "/pub").ToString(), IndexTtl = "00:00:00" },
                },
                Auth = new
                {
                    HtpasswdFile = htpasswd,
                    Rules = new object[]
                    {
                        new { Users = new[] { "alice" }, Upstream = "vendor" },
                        new { Users = new[] { "bob" }, Upstream = "vendor", Repository = "tools" },
                    },
                },
            },
            Logging = new { LogLevel = new { Default = "Debug", Microsoft = "Information" } },
        };
        var path = _work.Combine("mirror.json");
        File.WriteAllText(path, JsonSerializer.Serialize(config));
        return path;
    }

    /// <summary>A Helm client, as <c>helm repo add NAME URL [--username --password]</c> leaves it: credentials on every request.</summary>
    private HttpClient Client(RegistryCredentials? credentials)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { BaseAddress = _mirror.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = credentials?.ToBasicAuthenticationHeader();
        return client;
    }

    private Uri Repository(string name) => new(_mirror.BaseUri, "/helm/" + name);

    private static IndexedChart Chart(string name, string version) => new(name, version, null, [$"charts/{name}/{version}/{name}-{version}.tgz"], null);

    private async Task<HttpResponseMessage> GetChartAsync(RegistryCredentials? credentials, string repository, string name, string version)
    {
        using var client = Client(credentials);
        var response = await new HelmRequests(client).GetChartAsync(Repository(repository), Chart(name, version));
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    [Fact]
    public async Task PrivateRepository_AnonymousGets401_AUserNoRuleAllowsGets404_AllowedUsersGetTheirCharts()
    {
        // Anonymous clients, and wrong passwords, get the Basic challenge: for the index and for a chart.
        using (var anonymous = Client(null))
        {
            var (charts, response, _) = await new HelmRequests(anonymous).RepoUpdateAsync(Repository("vendor"));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Basic", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Empty(charts);
        }

        using (var anonymousChart = await GetChartAsync(null, "vendor", "app", "1.0.0"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymousChart.StatusCode);
            Assert.NotEqual(_archives["app"], await anonymousChart.Content.ReadAsByteArrayAsync());
        }

        using (var wrong = Client(WrongAlice))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await new HelmRequests(wrong).RepoUpdateAsync(Repository("vendor"))).Response.StatusCode);
        }

        // Alice may read the whole repository: the index, rewritten, and every chart, byte for byte.
        using (var alice = Client(Alice))
        {
            var helm = new HelmRequests(alice);
            var (charts, response, _) = await helm.RepoUpdateAsync(Repository("vendor"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(["app 1.0.0", "tools 2.0.0"], charts.Select(c => $"{c.Name} {c.Version}").Order(StringComparer.Ordinal));
            foreach (var chart in charts)
            {
                Assert.Equal(_archives[chart.Name], (await helm.PullAsync(Repository("vendor"), chart, provenance: false)).Archive);
            }
        }

        // Bob's rule names the tools chart only: he reads the index and tools, and app is not there for him.
        using (var bob = Client(Bob))
        {
            Assert.Equal(HttpStatusCode.OK, (await new HelmRequests(bob).RepoUpdateAsync(Repository("vendor"))).Response.StatusCode);
        }

        using (var bobsApp = await GetChartAsync(Bob, "vendor", "app", "1.0.0"))
        {
            Assert.Equal(HttpStatusCode.NotFound, bobsApp.StatusCode);
            Assert.NotEqual(_archives["app"], await bobsApp.Content.ReadAsByteArrayAsync());
        }

        using (var bobsTools = await GetChartAsync(Bob, "vendor", "tools", "2.0.0"))
        {
            Assert.Equal(HttpStatusCode.OK, bobsTools.StatusCode);
            Assert.Equal(_archives["tools"], await bobsTools.Content.ReadAsByteArrayAsync());
        }

        // The public repository stays open to everyone.
        using (var community = await GetChartAsync(null, "community", "community", "0.1.0"))
        {
            Assert.Equal(HttpStatusCode.OK, community.StatusCode);
            Assert.Equal(_archives["community"], await community.Content.ReadAsByteArrayAsync());
        }

        // The private repository saw only the mirror's own credentials, never a client's; each file once.
        Assert.All(_private.Requests.Where(r => r.Status != 401), r => Assert.Equal(RepositoryCredentials.ToBasicAuthenticationHeader().ToString(), r.Authorization));
        Assert.DoesNotContain(_private.Requests, r => r.Authorization == Alice.ToBasicAuthenticationHeader().ToString() || r.Authorization == Bob.ToBasicAuthenticationHeader().ToString());
        Assert.Equal(1, _private.Count("/vendor/app-1.0.0.tgz"));
        Assert.Equal(1, _private.Count("/vendor/tools-2.0.0.tgz"));

        await _mirror.StopAsync();
        foreach (var secret in new[] { RepositoryCredentials.Password, Alice.Password, Bob.Password, WrongAlice.Password })
        {
            Assert.DoesNotContain(secret, _mirror.Output.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task PrivateChart_IsNotServedThroughThePublicRepository_AndChecksTellOnlyThoseWhoMayRead()
    {
        // Alice brings the private app chart into the cache.
        using (var alice = await GetChartAsync(Alice, "vendor", "app", "1.0.0"))
        {
            Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
        }

        // The public repository's index names the same digest, but its upstream does not have the file: the
        // cached copy the private repository brought in is not served through it, to anyone.
        using (var anonymous = Client(null))
        {
            var (charts, response, _) = await new HelmRequests(anonymous).RepoUpdateAsync(Repository("community"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(_archives["app"])), charts.Single(c => c.Name == "app").Digest);
        }

        foreach (var credentials in new[] { (RegistryCredentials?)null, Alice })
        {
            using var leaked = await GetChartAsync(credentials, "community", "app", "1.0.0");
            Assert.Equal(HttpStatusCode.NotFound, leaked.StatusCode);
            Assert.NotEqual(_archives["app"], await leaked.Content.ReadAsByteArrayAsync());
        }

        Assert.Contains(_public.Requests, r => r.Path == "/pub/app-1.0.0.tgz" && r.Status == 404);

        // The check of the private chart: complete for Alice, and nothing about its content for anyone else.
        var forAlice = await CheckAsync("helm:vendor/app@1.0.0", Alice);
        Assert.Equal("ok", forAlice.GetProperty("status").GetString());
        Assert.Contains(forAlice.GetProperty("content").EnumerateArray(), c => c.GetProperty("kind").GetString() == "chart" && c.GetProperty("present").GetBoolean());
        foreach (var (credentials, why) in new[] { ((RegistryCredentials?)null, "is private: authenticate"), (Bob, "that you may read") })
        {
            var denied = await CheckAsync("helm:vendor/app@1.0.0", credentials);
            Assert.Equal("missing", denied.GetProperty("status").GetString());
            Assert.Empty(denied.GetProperty("content").EnumerateArray());
            Assert.Contains(why, denied.GetProperty("missing")[0].GetString(), StringComparison.Ordinal);
        }
    }

    private async Task<JsonElement> CheckAsync(string reference, RegistryCredentials? credentials)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/status/images") { Content = new StringContent($$"""{"images":["{{reference}}"],"platforms":"all"}""", Encoding.UTF8, "application/json") };
        request.Headers.Authorization = credentials?.ToBasicAuthenticationHeader();
        using var response = await _mirror.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        return json.RootElement.GetProperty("images")[0].Clone();
    }
}
