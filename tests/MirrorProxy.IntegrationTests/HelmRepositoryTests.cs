using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// Classic Helm repositories behind the mirror: a static chart repository (Kestrel serving files, with real chart
/// archives) whose index has relative URLs, absolute ones and ones on another host; fetched by the requests the
/// Helm client sends for <c>helm repo add</c>, <c>helm repo update</c> and <c>helm pull [--prov]</c>; then a chart
/// whose digest is wrong, the repository gone with both offline index modes, and charts carried to an island in a bundle.
/// </summary>
public sealed class HelmRepositoryTests(ITestOutputHelper log) : IAsyncLifetime
{
    private readonly TempDirectory _work = new("helm");
    private readonly Dictionary<string, byte[]> _archives = new(StringComparer.Ordinal);
    private StaticChartServer _repository = null!;
    private StaticChartServer _otherHost = null!;
    private string _upstreamIndex = "";

    private Uri UpstreamUrl => new(_repository.BaseUri, "/repo");

    public async Task InitializeAsync()
    {
        _repository = await StaticChartServer.StartAsync();
        _otherHost = await StaticChartServer.StartAsync();
        var files = new (string Name, string Version, string Url, StaticChartServer Server, string Path)[]
        {
            ("alpha", "1.0.0", "alpha-1.0.0.tgz", _repository, "/repo/alpha-1.0.0.tgz"),
            ("alpha", "0.9.0", "alpha-0.9.0.tgz", _repository, "/repo/alpha-0.9.0.tgz"),
            ("beta", "2.1.0", new Uri(_repository.BaseUri, "/repo/files/beta-2.1.0.tgz").ToString(), _repository, "/repo/files/beta-2.1.0.tgz"),
            ("gamma", "0.3.0", new Uri(_otherHost.BaseUri, "/dl/gamma-0.3.0.tgz").ToString(), _otherHost, "/dl/gamma-0.3.0.tgz"),
            ("slow", "1.0.0", "slow-1.0.0.tgz", _repository, "/repo/slow-1.0.0.tgz"),
        };
        var index = new StringBuilder("apiVersion: v1\nentries:\n");
        foreach (var chart in files.GroupBy(f => f.Name))
        {
            index.Append($"  {chart.Key}:\n");
            foreach (var (name, version, url, server, path) in chart)
            {
                var archive = StaticChartServer.ChartArchive(name, version, name == "slow" ? 3 * 1024 * 1024 : 0);
                _archives[name + "-" + version] = archive;
                server.Put(path, archive);
                index.Append($"""
                      - apiVersion: v2
                        appVersion: "1.0"
                        created: "2024-05-06T07:08:09.123456789Z"
                        description: The {name} chart, version {version}
                        digest: {Convert.ToHexStringLower(SHA256.HashData(archive))}
                        name: {name}
                        type: application
                        urls:
                        - {url}
                        version: {version}

                    """);
            }
        }

        // A chart whose archive is not the one the index names.
        var listed = StaticChartServer.ChartArchive("bad", "0.1.0");
        _repository.Put("/repo/bad-0.1.0.tgz", StaticChartServer.ChartArchive("bad", "0.1.0-tampered"));
        index.Append($"  bad:\n  - name: bad\n    version: 0.1.0\n    digest: {Convert.ToHexStringLower(SHA256.HashData(listed))}\n    urls: [bad-0.1.0.tgz]\n");
        index.Append("generated: \"2024-05-06T07:08:09Z\"\n");
        _upstreamIndex = index.ToString();
        _repository.Put("/repo/index.yaml", Encoding.UTF8.GetBytes(_upstreamIndex));
        _repository.Put("/repo/alpha-1.0.0.tgz.prov", StaticChartServer.Provenance("alpha", "1.0.0", _archives["alpha-1.0.0"]));
    }

    public async Task DisposeAsync()
    {
        await _repository.DisposeAsync();
        await _otherHost.DisposeAsync();
        _work.Dispose();
    }

    private Task<MirrorServer> StartMirrorAsync(string offlineIndex = "Full") => MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", new Uri("http://127.0.0.1:9"))],
        new Dictionary<string, string?>
        {
            ["MirrorProxy:HelmRepositories:0:Name"] = "charts",
            ["MirrorProxy:HelmRepositories:0:Url"] = UpstreamUrl.ToString(),
            ["MirrorProxy:HelmRepositories:0:IndexTtl"] = "00:00:00",
            ["MirrorProxy:HelmOfflineIndex"] = offlineIndex,
        });

    private static Uri MirrorRepository(MirrorServer mirror) => new(mirror.BaseUri, "/helm/charts");

    private static string Hex(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    [Fact]
    public async Task HelmRepoAddUpdateAndPull_ThroughTheMirror_EveryUrlRewritten_DigestsKept_ChartsFromTheRightHosts()
    {
        await using var mirror = await StartMirrorAsync();
        var helm = new HelmRequests(mirror.Client);

        var (charts, response, text) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = HelmRequests.Parse(_upstreamIndex);
        Assert.Equal(upstream.Select(c => (c.Name, c.Version, c.Digest, c.Description)), charts.Select(c => (c.Name, c.Version, c.Digest, c.Description)));
        Assert.All(charts, c => Assert.Equal($"charts/{c.Name}/{c.Version}/{c.Name}-{c.Version}.tgz", Assert.Single(c.Urls)));
        // Everything but the URLs is the upstream's text, to the character.
        Assert.Equal(_upstreamIndex.Split('\n').Where(l => !l.Contains(".tgz", StringComparison.Ordinal)), text.Split('\n').Where(l => !l.Contains(".tgz", StringComparison.Ordinal)));

        foreach (var chart in charts.Where(c => c.Name is "alpha" or "beta" or "gamma" && c.Version != "0.9.0"))
        {
            var (archive, provenance) = await helm.PullAsync(MirrorRepository(mirror), chart, provenance: chart.Name == "alpha");
            Assert.Equal(_archives[$"{chart.Name}-{chart.Version}"], archive);
            Assert.Equal(chart.Digest, Hex(archive));
            if (provenance is not null)
            {
                Assert.Contains($"sha256:{chart.Digest}", Encoding.UTF8.GetString(provenance), StringComparison.Ordinal);
            }
        }

        // Each chart came from the host its upstream URL names, once; a second helm pull and helm repo update come from the cache.
        Assert.Equal(1, _repository.Count("/repo/alpha-1.0.0.tgz"));
        Assert.Equal(1, _repository.Count("/repo/alpha-1.0.0.tgz.prov"));
        Assert.Equal(1, _repository.Count("/repo/files/beta-2.1.0.tgz"));
        Assert.Equal(1, _otherHost.Count("/dl/gamma-0.3.0.tgz"));
        Assert.All(_repository.Requests.Where(r => r.Path.EndsWith(".tgz", StringComparison.Ordinal)), r => Assert.Equal(HelmRequests.ChartAccept, r.Accept));
        foreach (var chart in charts.Where(c => c.Name is "alpha" or "gamma" && c.Version != "0.9.0"))
        {
            Assert.Equal(_archives[$"{chart.Name}-{chart.Version}"], (await helm.PullAsync(MirrorRepository(mirror), chart, provenance: chart.Name == "alpha")).Archive);
        }

        (_, response, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, _repository.Count("/repo/alpha-1.0.0.tgz"));
        Assert.Equal(1, _otherHost.Count("/dl/gamma-0.3.0.tgz"));
        Assert.Equal(1, _repository.Count("/repo/index.yaml")); // revalidated with its ETag: 304
        Assert.Contains(_repository.Requests, r => r.Path == "/repo/index.yaml" && r.Status == 304);

        var metrics = new PrometheusText(await mirror.Client.GetStringAsync("/metrics"));
        Assert.True(metrics.Sum("mirrorproxy_helm_requests_total", ("kind", "chart"), ("result", "hit")) >= 2);
        Assert.True(metrics.Sum("mirrorproxy_helm_requests_total", ("kind", "chart"), ("result", "miss")) >= 3);
        Assert.True(metrics.Sum("mirrorproxy_helm_requests_total", ("kind", "index"), ("result", "miss")) >= 1);
        Assert.True(metrics.Sum("mirrorproxy_helm_served_bytes_total", ("kind", "chart"), ("source", "cache")) >= _archives["alpha-1.0.0"].Length);
    }

    [Fact]
    public async Task ConcurrentPulls_OfOneChart_ShareOneUpstreamDownload()
    {
        await using var mirror = await StartMirrorAsync();
        var helm = new HelmRequests(mirror.Client);
        var (charts, _, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        var slow = charts.Single(c => c.Name == "slow");
        _repository.Slow["/repo/slow-1.0.0.tgz"] = true;

        var pulls = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => helm.PullAsync(MirrorRepository(mirror), slow, provenance: false)));

        Assert.All(pulls, p => Assert.Equal(_archives["slow-1.0.0"], p.Archive));
        Assert.Equal(1, _repository.Count("/repo/slow-1.0.0.tgz"));
    }

    [Fact]
    public async Task ChartWithAWrongDigest_ResponseBreaks_AndNothingIsCached()
    {
        await using var mirror = await StartMirrorAsync();
        var helm = new HelmRequests(mirror.Client);
        var (charts, _, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        var bad = charts.Single(c => c.Name == "bad");

        for (var attempt = 1; attempt <= 2; attempt++)
        {
            // The headers may say 200; the body never completes.
            var failure = await Record.ExceptionAsync(async () =>
            {
                using var response = await helm.GetChartAsync(MirrorRepository(mirror), bad);
                await response.Content.ReadAsByteArrayAsync();
            });
            Assert.True(failure is HttpRequestException or IOException, $"attempt {attempt}: a wrong chart must not arrive whole ({failure})");
            Assert.Equal(attempt, _repository.Count("/repo/bad-0.1.0.tgz"));
        }

        var file = WarmUpAndEvictionTests.BlobFile(mirror.CacheDirectory, "sha256:" + bad.Digest);
        Assert.False(File.Exists(file));
        var metrics = new PrometheusText(await mirror.Client.GetStringAsync("/metrics"));
        Assert.True(metrics.Sum("mirrorproxy_digest_mismatches_total", ("upstream", "helm:charts")) >= 2);
    }

    [Fact]
    public async Task RepositoryGone_FullIndexServedStale_CachedChartServed_UncachedIs503()
    {
        await using var mirror = await StartMirrorAsync("Full");
        var helm = new HelmRequests(mirror.Client);
        var (charts, _, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        var alpha = charts.Single(c => c.Name == "alpha" && c.Version == "1.0.0");
        await helm.PullAsync(MirrorRepository(mirror), alpha, provenance: true);

        await _repository.StopAsync();
        await _otherHost.StopAsync();

        var (stale, response, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("299", response.Headers.GetValues("Warning").Single(), StringComparison.Ordinal);
        Assert.Equal(charts, stale, (a, b) => a.Name == b.Name && a.Version == b.Version && a.Digest == b.Digest);

        var (archive, provenance) = await helm.PullAsync(MirrorRepository(mirror), alpha, provenance: true);
        Assert.Equal(_archives["alpha-1.0.0"], archive);
        Assert.NotNull(provenance);

        using var uncached = await helm.GetChartAsync(MirrorRepository(mirror), charts.Single(c => c.Name == "beta"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, uncached.StatusCode);
        Assert.NotNull(uncached.Headers.RetryAfter);
        var metrics = new PrometheusText(await mirror.Client.GetStringAsync("/metrics"));
        Assert.True(metrics.Sum("mirrorproxy_helm_requests_total", ("kind", "index"), ("result", "stale")) >= 1);
    }

    [Fact]
    public async Task RepositoryGone_HeldIndexListsOnlyCachedVersions_WhichInstall()
    {
        await using var mirror = await StartMirrorAsync("Held");
        var helm = new HelmRequests(mirror.Client);
        var (charts, _, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        var gamma = charts.Single(c => c.Name == "gamma");
        await helm.PullAsync(MirrorRepository(mirror), gamma, provenance: false);

        await _repository.StopAsync();
        await _otherHost.StopAsync();

        var (held, response, _) = await helm.RepoUpdateAsync(MirrorRepository(mirror));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("299", response.Headers.GetValues("Warning").Single(), StringComparison.Ordinal);
        var only = Assert.Single(held);
        Assert.Equal((gamma.Name, gamma.Version, gamma.Digest, gamma.Urls[0]), (only.Name, only.Version, only.Digest, only.Urls[0]));
        Assert.Equal(_archives["gamma-0.3.0"], (await helm.PullAsync(MirrorRepository(mirror), only, provenance: false)).Archive);
    }

    [Fact]
    public async Task WarmAndCheck_ChartReferences_PinTheArchive_AndCheckPassesOffline()
    {
        await using var mirror = await StartMirrorAsync();
        var list = _work.Combine("charts.txt");
        await File.WriteAllTextAsync(list, "helm:charts/alpha@1.0.0\nhelm:charts/beta@>=2.0,<3   # the newest 2.x\n");

        var (exit, output) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--images", list, "--pin-set", "charts");

        Assert.True(exit == 0, output);
        Assert.Contains("summary: 2 images, 2 warmed", output, StringComparison.Ordinal);
        using (var pins = JsonDocument.Parse(await mirror.Client.GetStringAsync("/admin/pins/charts")))
        {
            var digests = pins.RootElement.GetProperty("digests").EnumerateArray().Select(d => d.GetString()).ToList();
            Assert.Contains("sha256:" + Hex(_archives["alpha-1.0.0"]), digests);
            Assert.Contains("sha256:" + Hex(_archives["beta-2.1.0"]), digests);
            Assert.Contains("sha256:" + Hex(StaticChartServer.Provenance("alpha", "1.0.0", _archives["alpha-1.0.0"])), digests);
        }

        (exit, output) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--images", list, "--no-pin");
        Assert.True(exit == 0, output);
        Assert.Contains("summary: 2 images, 0 warmed, 2 already cached", output, StringComparison.Ordinal);

        await _repository.StopAsync();
        (exit, output) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--images", list, "--select", "helm:charts/alpha@0.*");
        Assert.Equal(1, exit);
        Assert.Contains("OK helm:charts/alpha@1.0.0", output, StringComparison.Ordinal);
        Assert.Contains("OK helm:charts/beta@>=2.0,<3", output, StringComparison.Ordinal);
        Assert.Contains("MISSING: helm:charts/alpha@0.9.0: chart alpha 0.9.0", output, StringComparison.Ordinal);
        Assert.Contains("selection: helm:charts: upstream unavailable, versions from the mirror's cached index", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChartsCarriedInABundle_AreServedByAnIslandThatNeverSawTheRepository()
    {
        // The connected side: a mirror in front of the repository exports a chart with a provenance file and one
        // from another host, by a version and by a range.
        await using var connected = await StartMirrorAsync();
        var (exit, output) = await RunCliAsync("bundle", "keygen", "--output", _work.Combine("signing"));
        Assert.True(exit == 0, output);
        var list = _work.Combine("charts.txt");
        await File.WriteAllTextAsync(list, "helm:charts/alpha@1.0.0\nhelm:charts/gamma@0.x\n");
        var bundle = _work.Combine("bundle");
        (exit, output) = await RunCliAsync("bundle", "export", "--server", connected.BaseUri.ToString(), "--images", list, "--sign-key", _work.Combine("signing.pem"), "--output", bundle);
        log.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("0 images, 2 charts of 1 Helm repositories", output, StringComparison.Ordinal);

        // The signed manifest names each chart: repository, name, version, upstream URL, digest (and provenance).
        using (var manifest = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(bundle, "mirrorproxy-bundle.json"))))
        {
            var root = manifest.RootElement;
            Assert.Equal(2, root.GetProperty("formatVersion").GetInt32());
            var repository = Assert.Single(root.GetProperty("helmRepositories").EnumerateArray());
            Assert.Equal(("charts", UpstreamUrl.ToString()), (repository.GetProperty("name").GetString(), repository.GetProperty("url").GetString()));
            var charts = root.GetProperty("charts").EnumerateArray().ToDictionary(c => c.GetProperty("chart").GetString()!);
            Assert.Equal(("charts", "1.0.0", new Uri(UpstreamUrl + "/alpha-1.0.0.tgz").ToString(), "sha256:" + Hex(_archives["alpha-1.0.0"])),
                (charts["alpha"].GetProperty("repository").GetString(), charts["alpha"].GetProperty("version").GetString(), charts["alpha"].GetProperty("url").GetString(),
                 charts["alpha"].GetProperty("digest").GetString()));
            Assert.Equal("sha256:" + Hex(StaticChartServer.Provenance("alpha", "1.0.0", _archives["alpha-1.0.0"])), charts["alpha"].GetProperty("provenanceDigest").GetString());
            Assert.Equal(("0.3.0", new Uri(_otherHost.BaseUri, "/dl/gamma-0.3.0.tgz").ToString(), "sha256:" + Hex(_archives["gamma-0.3.0"])),
                (charts["gamma"].GetProperty("version").GetString(), charts["gamma"].GetProperty("url").GetString(), charts["gamma"].GetProperty("digest").GetString()));
            Assert.False(charts["gamma"].TryGetProperty("provenanceDigest", out _));
        }

        (exit, output) = await RunCliAsync("bundle", "verify", "--trust", _work.Combine("signing.pub"), bundle);
        Assert.True(exit == 0, output);
        Assert.Contains("helm:charts/alpha@1.0.0 sha256:" + Hex(_archives["alpha-1.0.0"]) + " (with provenance)", output, StringComparison.Ordinal);

        // An island without the repository configured refuses the bundle, says how to configure it, and keeps nothing.
        await using (var bare = await MirrorServer.StartAsync(_work.Combine("bare"), [("docker.io", new Uri("http://127.0.0.1:9"))],
            new Dictionary<string, string?> { ["MirrorProxy:Offline"] = "true" }))
        {
            (exit, output) = await RunCliAsync("bundle", "import", "--server", bare.BaseUri.ToString(), "--trust", _work.Combine("signing.pub"), bundle);
            Assert.Equal(1, exit);
            Assert.Contains($"no Helm repository named charts is configured on this mirror, so its charts could not be served: configure it (--helm-repo charts={UpstreamUrl}", output, StringComparison.Ordinal);
            var names = Directory.EnumerateFiles(_work.Combine("bare"), "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
            Assert.DoesNotContain(Hex(_archives["alpha-1.0.0"]), names);
            Assert.DoesNotContain(Hex(_archives["gamma-0.3.0"]), names);
        }

        // The island: offline, its repository of that name never reached, an offline index that lists what is held.
        await using var island = await MirrorServer.StartAsync(_work.Combine("island"), [("docker.io", new Uri("http://127.0.0.1:9"))], new Dictionary<string, string?>
        {
            ["MirrorProxy:Offline"] = "true",
            ["MirrorProxy:HelmRepositories:0:Name"] = "charts",
            ["MirrorProxy:HelmRepositories:0:Url"] = UpstreamUrl.ToString(),
            ["MirrorProxy:HelmOfflineIndex"] = "Held",
        });
        var helm = new HelmRequests(island.Client);
        var (_, before, _) = await helm.RepoUpdateAsync(MirrorRepository(island));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, before.StatusCode);
        var upstreamRequests = _repository.Requests.Count + _otherHost.Requests.Count;

        (exit, output) = await RunCliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", _work.Combine("signing.pub"), bundle);
        log.WriteLine(output);
        Assert.True(exit == 0, output);
        Assert.Contains("0 images, 2 charts, 0 manifests", output, StringComparison.Ordinal);

        // helm repo update lists exactly the two charts carried, and helm pull [--prov] gets their bytes.
        var (held, response, _) = await helm.RepoUpdateAsync(MirrorRepository(island));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["alpha 1.0.0", "gamma 0.3.0"], held.Select(c => $"{c.Name} {c.Version}").Order(StringComparer.Ordinal));
        var alpha = held.Single(c => c.Name == "alpha");
        var (archive, provenance) = await helm.PullAsync(MirrorRepository(island), alpha, provenance: true);
        Assert.Equal(_archives["alpha-1.0.0"], archive);
        Assert.Equal(StaticChartServer.Provenance("alpha", "1.0.0", _archives["alpha-1.0.0"]), provenance);
        Assert.Equal(_archives["gamma-0.3.0"], (await helm.PullAsync(MirrorRepository(island), held.Single(c => c.Name == "gamma"), provenance: false)).Archive);
        Assert.Equal(upstreamRequests, _repository.Requests.Count + _otherHost.Requests.Count);

        // The charts are pinned and check passes, offline.
        using (var pins = JsonDocument.Parse(await island.Client.GetStringAsync("/admin/pins/bundle")))
        {
            var digests = pins.RootElement.GetProperty("digests").EnumerateArray().Select(d => d.GetString()).ToList();
            Assert.Contains("sha256:" + Hex(_archives["alpha-1.0.0"]), digests);
            Assert.Contains("sha256:" + Hex(_archives["gamma-0.3.0"]), digests);
            Assert.Contains("sha256:" + Hex(provenance!), digests);
        }

        (exit, output) = await RunCliAsync("check", "--server", island.BaseUri.ToString(), "--images", list);
        Assert.True(exit == 0, output);
        Assert.Contains("OK helm:charts/alpha@1.0.0", output, StringComparison.Ordinal);
        Assert.Contains("OK helm:charts/gamma@0.x", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Measure_IndexRewriteOf2000Versions_AndChartThroughput()
    {
        // An index of 2,000 chart versions (100 charts of 20), as large public repositories have.
        var big = new StringBuilder("apiVersion: v1\nentries:\n");
        for (var c = 0; c < 100; c++)
        {
            big.Append($"  chart-{c:D3}:\n");
            for (var v = 0; v < 20; v++)
            {
                big.Append($"  - apiVersion: v2\n    appVersion: 1.{v}.0\n    created: \"2024-05-06T07:08:09Z\"\n    description: Chart {c} with a description as long as real ones have, {new string('x', 120)}\n" +
                    $"    digest: {Hex(Encoding.UTF8.GetBytes($"{c}-{v}"))}\n    home: https://example.com/chart-{c}\n    keywords: [a, b, c]\n    maintainers:\n    - name: someone\n      email: someone@example.com\n" +
                    $"    name: chart-{c:D3}\n    urls:\n    - https://github.com/example/charts/releases/download/chart-{c:D3}-1.{v}.0/chart-{c:D3}-1.{v}.0.tgz\n    version: 1.{v}.0\n");
            }
        }

        _repository.Put("/big/index.yaml", Encoding.UTF8.GetBytes(big.ToString()));
        var large = StaticChartServer.ChartArchive("large", "1.0.0", 16 * 1024 * 1024);
        _repository.Put("/big/large-1.0.0.tgz", large);
        big.Append($"  large:\n  - name: large\n    version: 1.0.0\n    digest: {Hex(large)}\n    urls: [large-1.0.0.tgz]\n");
        _repository.Put("/big/index.yaml", Encoding.UTF8.GetBytes(big.ToString()));
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", new Uri("http://127.0.0.1:9"))], new Dictionary<string, string?>
        {
            ["MirrorProxy:HelmRepositories:0:Name"] = "big",
            ["MirrorProxy:HelmRepositories:0:Url"] = new Uri(_repository.BaseUri, "/big").ToString(),
        });
        var helm = new HelmRequests(mirror.Client);

        var rewrite = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var stopwatch = Stopwatch.StartNew();
            var (status, rewritten, records) = Helm.HelmIndexService.Rewrite(
                mirror.GetService<Helm.HelmRepositorySet>().All[0], Encoding.UTF8.GetBytes(big.ToString()));
            rewrite.Add(stopwatch.Elapsed.TotalMilliseconds);
            Assert.Equal(Helm.IndexScanStatus.Ok, status);
            Assert.Equal(2001, records.Count);
            Assert.True(rewritten.Length > 0);
        }

        var (charts, response, _) = await helm.RepoUpdateAsync(new Uri(mirror.BaseUri, "/helm/big"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2001, charts.Count);
        var chart = charts.Single(c => c.Name == "large");

        // Streamed to nothing with Helm's headers, five times each, alternating so that both see the same load.
        async Task<long> DrainAsync(Uri url)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.UserAgent.ParseAdd(HelmRequests.UserAgent);
            request.Headers.TryAddWithoutValidation("Accept", HelmRequests.ChartAccept);
            using var answer = await mirror.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await using var body = await answer.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            long total = 0;
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                total += read;
            }

            return total;
        }

        Assert.Equal(large, (await helm.PullAsync(new Uri(mirror.BaseUri, "/helm/big"), chart, provenance: false)).Archive);
        var directUrl = new Uri(_repository.BaseUri, "/big/large-1.0.0.tgz");
        var mirrorUrl = HelmRequests.Resolve(new Uri(mirror.BaseUri, "/helm/big"), chart.Urls[0]);
        var (directTime, cachedTime) = (TimeSpan.Zero, TimeSpan.Zero);
        for (var i = 0; i < 5; i++)
        {
            var stopwatch = Stopwatch.StartNew();
            Assert.Equal(large.Length, await DrainAsync(directUrl));
            directTime += stopwatch.Elapsed;
            stopwatch.Restart();
            Assert.Equal(large.Length, await DrainAsync(mirrorUrl));
            cachedTime += stopwatch.Elapsed;
        }

        var direct = 5.0 * large.Length / directTime.TotalSeconds / (1024 * 1024);
        var cached = 5.0 * large.Length / cachedTime.TotalSeconds / (1024 * 1024);
        log.WriteLine($"index of 2,001 versions ({big.Length / 1024} KiB): rewrite {rewrite.Min():0.0} ms best, {rewrite.Average():0.0} ms mean of 5");
        log.WriteLine($"chart of {large.Length / (1024 * 1024)} MiB: static server directly {direct:0} MiB/s, through the mirror (cached) {cached:0} MiB/s");
    }

    private static async Task<(int Exit, string Output)> RunCliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output + error.ToString());
    }
}
