using System.Net;
using System.Security.Cryptography.X509Certificates;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>TLS towards clients (private CA, HTTP/2, renewal without restart) and towards upstreams (CA bundles).</summary>
[Collection(PullThroughCollection.Name)]
public sealed class TlsTests(PullThroughFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("tls");

    public void Dispose() => _work.Dispose();

    private Dictionary<string, string?> TlsSettings(string certificate, string key) => new()
    {
        ["MirrorProxy:Tls:CertificateFile"] = certificate,
        ["MirrorProxy:Tls:KeyFile"] = key,
        ["MirrorProxy:Tls:ReloadInterval"] = "00:00:00.100",
        ["MirrorProxy:Upstreams:1:Username"] = PullThroughFixture.Credentials.Username,
        ["MirrorProxy:Upstreams:1:Password"] = PullThroughFixture.Credentials.Password,
    };

    /// <summary>A new connection, trusting exactly <paramref name="ca"/>; returns the server certificate it saw.</summary>
    private static async Task<(HttpResponseMessage Response, string? Thumbprint)> GetOverNewConnectionAsync(Uri uri, string ca, Version version)
    {
        string? seen = null;
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(ca);
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions =
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    var presented = (X509Certificate2)certificate!;
                    seen = presented.Thumbprint;
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return chain.Build(presented);
                },
            },
        };
        using var client = new HttpClient(handler);
        var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, uri) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact });
        return (response, seen);
    }

    [Fact]
    public async Task ServerCertificate_IsRenewedForNewConnectionsWithoutRestart_OverHttp2()
    {
        using var oldCa = new TestCertificateAuthority("Old Island CA", _work.Path);
        using var newCa = new TestCertificateAuthority("New Island CA", _work.Path);
        var first = oldCa.IssueServer("mirror-first");
        var second = newCa.IssueServer("mirror-second");
        var certificate = _work.Combine("tls.crt");
        var key = _work.Combine("tls.key");
        File.Copy(first.CertificateFile, certificate);
        File.Copy(first.KeyFile, key);
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"), settings: TlsSettings(certificate, key));
        var uri = new Uri($"https://127.0.0.1:{mirror.BaseUri.Port}/v2/");

        var (before, seenBefore) = await GetOverNewConnectionAsync(uri, oldCa.CertificateFile, HttpVersion.Version20);
        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpVersion.Version20, before.Version);
        Assert.Equal(first.Thumbprint, seenBefore);

        // As a Secret update lands: new files moved into place.
        File.Copy(second.KeyFile, key + ".new");
        File.Copy(second.CertificateFile, certificate + ".new");
        File.Move(key + ".new", key, overwrite: true);
        File.Move(certificate + ".new", certificate, overwrite: true);

        string? seenAfter = null;
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                var (response, seen) = await GetOverNewConnectionAsync(uri, newCa.CertificateFile, HttpVersion.Version11);
                seenAfter = seen;
                return response.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false; // still the old certificate, which the new CA does not trust
            }
        }, TimeSpan.FromSeconds(10), "a new connection is served the renewed certificate");
        Assert.Equal(second.Thumbprint, seenAfter);
    }

    [Fact]
    public async Task Containerd_PullsOverHttps_TrustingThePrivateCaGivenInHostsToml()
    {
        using var ca = new TestCertificateAuthority("Island CA", _work.Path);
        var server = ca.IssueServer("mirror");
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"), settings: TlsSettings(server.CertificateFile, server.KeyFile));
        var image = fixture.MultiArch;
        var hosts = _work.Combine("hosts");
        Directory.CreateDirectory(Path.Combine(hosts, "docker.io"));
        await File.WriteAllTextAsync(Path.Combine(hosts, "docker.io", "hosts.toml"), $"""
            server = "http://127.0.0.1:1"

            [host."https://127.0.0.1:{mirror.BaseUri.Port}"]
              capabilities = ["pull", "resolve"]
              ca = "{ca.CertificateFile}"
            """);

        await using var containerd = await ContainerdDaemon.StartAsync();
        (await containerd.PullAsync($"docker.io/{image.Repository}:{image.Tag}", hosts, "linux/amd64")).EnsureSuccess();

        var amd64 = image.GetManifest(OciPlatform.LinuxAmd64);
        foreach (var layer in amd64.Layers)
        {
            Assert.Equal(layer.Content, await containerd.GetContentAsync(layer.Digest));
        }
    }

    [Fact]
    public async Task HttpsUpstream_IsTrustedOnlyThroughItsCaBundle()
    {
        using var ca = new TestCertificateAuthority("Harbor CA", _work.Path);
        var upstreamCertificate = ca.IssueServer("harbor");
        await using var registry = await TestRegistry.StartAsync(new TestRegistryOptions { TlsCertificateFile = upstreamCertificate.CertificateFile, TlsKeyFile = upstreamCertificate.KeyFile });
        var image = await OciImageFactory.PushDockerImageAsync(registry, "secure/app", "1", "tls-upstream");
        var manifestPath = $"/v2/{image.Repository}/manifests/{image.Tag}?ns=harbor.test";

        await using (var untrusting = await MirrorServer.StartAsync(_work.Combine("untrusting"), [("harbor.test", registry.BaseUri)]))
        {
            using var refused = await untrusting.Client.GetAsync(manifestPath);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        }

        await using var trusting = await MirrorServer.StartAsync(_work.Combine("trusting"), [("harbor.test", registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:Upstreams:0:CaFile"] = ca.CertificateFile, ["MirrorProxy:Upstreams:0:TrustSystemRoots"] = "false" });
        Assert.Equal(image.ManifestBytes, await trusting.Client.GetByteArrayAsync(manifestPath));
        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await trusting.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=harbor.test"));
        }

        using var otherCa = new TestCertificateAuthority("Some Other CA", _work.Path);
        await using var wrongCa = await MirrorServer.StartAsync(_work.Combine("wrong"), [("harbor.test", registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:Upstreams:0:CaFile"] = otherCa.CertificateFile });
        using var wrong = await wrongCa.Client.GetAsync(manifestPath);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, wrong.StatusCode);
    }
}
