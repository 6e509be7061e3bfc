using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MirrorProxy.Cache;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using MirrorProxy.Oci;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// deploy/monitoring against the real mirror: every <c>mirrorproxy_*</c> series an alert or the dashboard reads is
/// in a real scrape after a warm-up with pins, and <c>promtool test rules</c> shows each alert firing on the
/// series scraped from the mirror in that fault (pinned content deleted, upstream down, a corrupting upstream,
/// a full disk) and staying quiet on the scrape from before the fault.
/// </summary>
[Collection(MonitoringCollection.Name)]
public sealed partial class MonitoringTests(PullThroughFixture fixture, ITestOutputHelper log) : IDisposable
{
    private static readonly string Monitoring = Path.Combine(RepositoryRoot.Path, "deploy", "monitoring");
    private readonly TempDirectory _work = new("monitoring");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task EverySeriesOfTheAlertsAndTheDashboard_IsInARealScrapeAfterAWarmUpWithPins()
    {
        await using var mirror = await fixture.StartMirrorAsync(_work.Combine("cache"), settings: new Dictionary<string, string?> { ["MirrorProxy:Cache:MaxSize"] = "1GiB" });
        await WarmAsync(mirror);
        var scrape = await ScrapeAsync(mirror);

        var alertSeries = SeriesNames(File.ReadAllText(Path.Combine(Monitoring, "alerts.yaml")));
        var dashboardSeries = SeriesNames(string.Join('\n', DashboardExpressions()));
        Assert.Contains("mirrorproxy_pins_missing", alertSeries);
        Assert.Contains("mirrorproxy_cache_quarantined_total", dashboardSeries);
        foreach (var name in alertSeries.Union(dashboardSeries))
        {
            Assert.True(scrape.Has(name), $"{name} is read by deploy/monitoring but the mirror does not export it");
        }

        // Counters that alerts read with increase() are there from zero, for every configured upstream.
        foreach (var upstream in new[] { "docker.io", "auth.test" })
        {
            Assert.Equal(0, Assert.Single(scrape.Samples("mirrorproxy_digest_mismatches_total"), s => s.Labels["upstream"] == upstream).Value);
            Assert.Equal(0, Assert.Single(scrape.Samples("mirrorproxy_pulls_failed_total"), s => s.Labels["upstream"] == upstream).Value);
        }

        Assert.Equal(["digest", "size"], scrape.Samples("mirrorproxy_cache_quarantined_total").Select(s => s.Labels["reason"]).Order());
        Assert.Equal(["io", "no_space", "read_only"], scrape.Samples("mirrorproxy_cache_write_failures_total").Select(s => s.Labels["error"]).Order());
    }

    [Fact]
    public async Task EveryAlert_FiresOnTheSeriesScrapedFromTheMirrorInItsFault()
    {
        var cases = new List<string>();

        // Pinned content deleted from the cache.
        await using (var mirror = await fixture.StartMirrorAsync(_work.Combine("pins")))
        {
            await WarmAsync(mirror);
            var before = await ScrapeAsync(mirror);
            var layer = fixture.DockerImage.Blobs.Last();
            Assert.True(Digest.TryParse(layer.Digest, out var digest));
            File.Delete(mirror.BlobPath(digest));
            var after = await ScrapeUntilAsync(mirror, s => s.Sum("mirrorproxy_pins_missing") >= 1, "deleting a pinned layer shows as missing");
            cases.Add(Case("MirrorProxyPinnedContentMissing", "20m", [Gauge("mirrorproxy_pins_missing", after, "30")], Expected(after, "mirrorproxy_pins_missing", "critical")));
            cases.Add(Case("MirrorProxyPinnedContentMissing", "20m", [Gauge("mirrorproxy_pins_missing", before, "30")], []));
        }

        // The upstream is down: nothing listens where it should be.
        await using (var mirror = await MirrorServer.StartAsync(_work.Combine("down"), [("docker.io", new Uri($"http://127.0.0.1:{ClosedPort()}"))]))
        {
            var before = await ScrapeAsync(mirror);
            for (var i = 0; i < 4 && !(await ScrapeAsync(mirror)).Samples("mirrorproxy_upstream_state").Any(s => s.Labels["state"] == "down" && s.Value == 1); i++)
            {
                using var answer = await mirror.Client.GetAsync($"/v2/team/app/manifests/never-{i}?ns=docker.io");
                Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, answer.StatusCode);
            }

            var after = await ScrapeUntilAsync(mirror, s => s.Sum("mirrorproxy_upstream_state", ("state", "down")) == 1, "the upstream shows as down");
            Assert.True(after.Sum("mirrorproxy_pulls_failed_total", ("upstream", "docker.io")) >= 2);
            cases.Add(Case("MirrorProxyUpstreamDown", "35m", Gauges("mirrorproxy_upstream_state", after, "40"), Expected(after, "mirrorproxy_upstream_state", "info", s => s.Value == 1 && s.Labels["state"] == "down")));
            cases.Add(Case("MirrorProxyUpstreamDown", "35m", Gauges("mirrorproxy_upstream_state", before, "40"), []));
        }

        // A corrupting upstream: the blob's bytes do not match its digest.
        var blob = new byte[300 * 1024];
        new Random(7).NextBytes(blob);
        await using (var corrupt = await FaultyUpstream.StartAsync(blob))
        await using (var mirror = await MirrorServer.StartAsync(_work.Combine("corrupt"), [("docker.io", corrupt.BaseUri)]))
        {
            corrupt.Mode = FaultMode.Corrupt;
            var before = await ScrapeAsync(mirror);
            await Assert.ThrowsAnyAsync<Exception>(() => mirror.Client.GetByteArrayAsync($"/v2/team/app/blobs/{corrupt.Digest}?ns=docker.io"));
            var after = await ScrapeUntilAsync(mirror, s => s.Sum("mirrorproxy_digest_mismatches_total") == 1, "the mismatch is counted");
            var series = Counter("mirrorproxy_digest_mismatches_total", before, after, s => s.Labels["upstream"] == "docker.io");
            cases.Add(Case("MirrorProxyDigestMismatches", "10m", [series], Expected(after, "mirrorproxy_digest_mismatches_total", "warning", s => s.Value == 1, dropName: true)));
            cases.Add(Case("MirrorProxyDigestMismatches", "4m", [series], []));
        }

        // A full disk: the cache on a small file system, filled up, then out of inodes too.
        using (var disk = await SmallFileSystem.MountAsync(_work.Combine("small")))
        await using (var mirror = await MirrorServer.StartAsync(disk.Path, [("docker.io", fixture.Upstream.BaseUri)],
                         new Dictionary<string, string?> { ["MirrorProxy:Cache:MinFreeDisk"] = "1MiB" }))
        {
            using (var ready = await mirror.Client.GetAsync("/readyz"))
            {
                Assert.True(ready.IsSuccessStatusCode, await ready.Content.ReadAsStringAsync());
            }

            var before = await ScrapeAsync(mirror);
            disk.Fill();
            using (var ready = await mirror.Client.GetAsync("/readyz"))
            {
                // Still in service (it serves what it holds), and saying why it is degraded.
                Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
                Assert.Contains("\"status\":\"degraded\"", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            var after = await ScrapeUntilAsync(mirror, s => s.Sum("mirrorproxy_cache_degraded") == 1 && s.Sum("mirrorproxy_cache_disk_free_bytes") < 1 << 20,
                "the full disk shows as not writable and without free space");
            cases.Add(Case("MirrorProxyCacheDiskNearlyFull", "15m",
                [Gauge("mirrorproxy_cache_disk_free_bytes", after, "20"), Gauge("mirrorproxy_cache_size_bytes", after, "20")],
                Expected(after, "mirrorproxy_cache_disk_free_bytes", "warning")));
            cases.Add(Case("MirrorProxyCacheNotWritable", "8m", [Gauge("mirrorproxy_cache_degraded", after, "10")], Expected(after, "mirrorproxy_cache_degraded", "critical")));
            cases.Add(Case("MirrorProxyCacheNotWritable", "8m", [Gauge("mirrorproxy_cache_degraded", before, "10")], []));
            disk.Empty();
        }

        // Prometheus's own series for a mirror that does not answer its scrape.
        cases.Add(Case("MirrorProxyDown", "10m", [("up{job=\"mirrorproxy\",instance=\"mirror:5000\"}", "0+0x15")],
            [new Dictionary<string, string> { ["job"] = "mirrorproxy", ["instance"] = "mirror:5000", ["severity"] = "critical" }]));

        // promtool compares annotations too; their templates are checked by `promtool check rules` on the full
        // file, and the firing (expression, for, labels) by the test on the same rules without annotations.
        var fullRules = _work.Combine("rules-full.yaml");
        var rules = _work.Combine("rules.yaml");
        WriteRuleGroups(Path.Combine(Monitoring, "alerts.yaml"), fullRules, withAnnotations: true);
        WriteRuleGroups(Path.Combine(Monitoring, "alerts.yaml"), rules, withAnnotations: false);
        var test = _work.Combine("alerts.test.yaml");
        File.WriteAllText(test, $"rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n{string.Join("", cases)}");
        log.WriteLine(File.ReadAllText(test));

        (await ProcessRunner.RunAsync("promtool", ["check", "rules", fullRules], TimeSpan.FromMinutes(1), CancellationToken.None)).EnsureSuccess();
        var result = await ProcessRunner.RunAsync("promtool", ["test", "rules", test], TimeSpan.FromMinutes(2), CancellationToken.None);
        Assert.True(result.Succeeded, result.Describe() + "\n" + File.ReadAllText(test));
        Assert.Contains("SUCCESS", result.StandardOutput + result.StandardError, StringComparison.Ordinal);

        // Every alert of the file was put to the test.
        var alerts = AlertNames().ToHashSet(StringComparer.Ordinal);
        Assert.Subset(cases.Select(c => AlertOf().Match(c).Groups[1].Value).ToHashSet(StringComparer.Ordinal), alerts);
        Assert.Superset(alerts, cases.Select(c => AlertOf().Match(c).Groups[1].Value).ToHashSet(StringComparer.Ordinal));
    }

    private async Task WarmAsync(MirrorServer mirror)
    {
        var images = _work.Combine($"images-{Guid.NewGuid():N}.txt");
        await File.WriteAllTextAsync(images, $"docker.io/{fixture.DockerImage.Repository}:{fixture.DockerImage.Tag}\n");
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.InvokeAsync(["warm", "--server", mirror.BaseUri.ToString(), "--images", images, "--platform", "all", "--pin-set", "cluster"],
            new System.CommandLine.InvocationConfiguration { Output = output, Error = error });
        Assert.True(exit == 0, $"{output}{error}");
        // A cached tag asked for again is a hit.
        (await mirror.Client.GetAsync($"/v2/{fixture.DockerImage.Repository}/manifests/{fixture.DockerImage.Tag}?ns=docker.io")).EnsureSuccessStatusCode();
    }

    private static async Task<PrometheusText> ScrapeAsync(MirrorServer mirror) => new(await mirror.Client.GetStringAsync("/metrics"));

    /// <summary>Scrapes until <paramref name="condition"/> holds (the exporter caches a scrape for a moment).</summary>
    private static async Task<PrometheusText> ScrapeUntilAsync(MirrorServer mirror, Func<PrometheusText, bool> condition, string because)
    {
        PrometheusText? last = null;
        await Eventually.TrueAsync(async () => condition(last = await ScrapeAsync(mirror)), TimeSpan.FromSeconds(15), because);
        return last!;
    }

    private static IEnumerable<string> DashboardExpressions()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(Monitoring, "mirrorproxy-dashboard.json")));
        var expressions = new List<string>();
        foreach (var panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
        {
            expressions.AddRange(panel.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!));
        }

        foreach (var variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.TryGetProperty("definition", out var definition))
            {
                expressions.Add(definition.GetString()!);
            }
        }

        return expressions;
    }

    private static HashSet<string> SeriesNames(string text) => SeriesName().Matches(text).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);

    private static IEnumerable<string> AlertNames() => AlertLine().Matches(File.ReadAllText(Path.Combine(Monitoring, "alerts.yaml"))).Select(m => m.Groups[1].Value);

    /// <summary>The PrometheusRule's groups as a plain rules file for promtool.</summary>
    private static void WriteRuleGroups(string prometheusRule, string rulesFile, bool withAnnotations)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(prometheusRule))
        {
            stream.Load(reader);
        }

        var spec = (YamlMappingNode)((YamlMappingNode)stream.Documents[0].RootNode).Children[new YamlScalarNode("spec")];
        if (!withAnnotations)
        {
            foreach (var group in ((YamlSequenceNode)spec.Children[new YamlScalarNode("groups")]).Children.OfType<YamlMappingNode>())
            {
                foreach (var rule in ((YamlSequenceNode)group.Children[new YamlScalarNode("rules")]).Children.OfType<YamlMappingNode>())
                {
                    rule.Children.Remove(new YamlScalarNode("annotations"));
                }
            }
        }

        var output = new YamlStream(new YamlDocument(new YamlMappingNode(new YamlScalarNode("groups"), spec.Children[new YamlScalarNode("groups")])));
        using var writer = new StreamWriter(rulesFile);
        output.Save(writer, assignAnchors: false);
    }

    private const string Instance = "mirror:5000";

    private static Dictionary<string, string> Target(IReadOnlyDictionary<string, string> labels, bool withName, string name)
    {
        var result = new Dictionary<string, string>(labels, StringComparer.Ordinal) { ["job"] = "mirrorproxy", ["instance"] = Instance };
        if (withName)
        {
            result["__name__"] = name;
        }

        return result;
    }

    private static string Series(string name, IReadOnlyDictionary<string, string> labels) =>
        name + "{" + string.Join(",", Target(labels, false, name).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}=\"{Escape(p.Value)}\"")) + "}";

    /// <summary>One scraped gauge sample held for <paramref name="minutes"/> minutes.</summary>
    private static (string Series, string Values) Gauge(string name, PrometheusText scrape, string minutes)
    {
        var sample = Assert.Single(scrape.Samples(name));
        return (Series(name, sample.Labels), $"{Number(sample.Value)}+0x{minutes}");
    }

    private static IEnumerable<(string Series, string Values)> Gauges(string name, PrometheusText scrape, string minutes) =>
        scrape.Samples(name).Select(s => (Series(name, s.Labels), $"{Number(s.Value)}+0x{minutes}")).ToList();

    /// <summary>A counter as scraped before the fault (5 minutes) and after it (20 minutes).</summary>
    private static (string Series, string Values) Counter(string name, PrometheusText before, PrometheusText after, Func<(IReadOnlyDictionary<string, string> Labels, double Value), bool> which)
    {
        var last = after.Samples(name).Single(which);
        // No sample before the fault is written '_' (absent): increase() then sees no increase.
        var first = before.Samples(name).Where(which).Select(s => Number(s.Value)).FirstOrDefault() ?? "_";
        var start = first == "_" ? "_x5" : $"{first}+0x5";
        return (Series(name, last.Labels), $"{start} {Number(last.Value)}+0x20");
    }

    private static List<Dictionary<string, string>> Expected(
        PrometheusText scrape, string name, string severity, Func<(IReadOnlyDictionary<string, string> Labels, double Value), bool>? which = null, bool dropName = false)
    {
        var sample = scrape.Samples(name).Single(which ?? (_ => true));
        var labels = Target(sample.Labels, withName: false, name);
        labels["severity"] = severity;
        return [labels];
    }

    private static string Case(string alert, string evalTime, IEnumerable<(string Series, string Values)> inputs, List<Dictionary<string, string>> expected)
    {
        var text = new StringBuilder();
        text.Append("  - interval: 1m\n    input_series:\n");
        foreach (var (series, values) in inputs)
        {
            text.Append($"      - series: '{series}'\n        values: '{values}'\n");
        }

        text.Append($"    alert_rule_test:\n      - eval_time: {evalTime}\n        alertname: {alert}\n        exp_alerts:");
        if (expected.Count == 0)
        {
            text.Append(" []\n");
            return text.ToString();
        }

        text.Append('\n');
        foreach (var labels in expected)
        {
            text.Append("          - exp_labels:\n");
            foreach (var (key, value) in labels.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                text.Append($"              {key}: \"{Escape(value)}\"\n");
            }
        }

        return text.ToString();
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    private static string? Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static int ClosedPort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    [GeneratedRegex(@"\bmirrorproxy_[a-z0-9_]+")]
    private static partial Regex SeriesName();

    [GeneratedRegex(@"^\s*- alert: (\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex AlertLine();

    [GeneratedRegex(@"alertname: (\S+)")]
    private static partial Regex AlertOf();

    /// <summary>A tmpfs of a few MiB and few inodes (mounting needs root), to fill up as a full disk.</summary>
    private sealed class SmallFileSystem : IDisposable
    {
        private readonly List<string> _fillers = [];

        private SmallFileSystem(string path) => Path = path;

        public string Path { get; }

        public static async Task<SmallFileSystem> MountAsync(string path)
        {
            Directory.CreateDirectory(path);
            (await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", "size=24m,nr_inodes=400,mode=0755", "tmpfs", path], TimeSpan.FromSeconds(30), CancellationToken.None))
                .EnsureSuccess();
            return new SmallFileSystem(path);
        }

        /// <summary>Takes every free byte, then every free inode.</summary>
        public void Fill()
        {
            var big = System.IO.Path.Combine(Path, "filler");
            _fillers.Add(big);
            using (var file = new FileStream(big, FileMode.Create))
            {
                var chunk = new byte[1 << 20];
                try
                {
                    for (var i = 0; i < 64; i++)
                    {
                        file.Write(chunk);
                        file.Flush();
                    }
                }
                catch (IOException)
                {
                }
            }

            for (var i = 0; i < 1000; i++)
            {
                var name = System.IO.Path.Combine(Path, $"filler-{i}");
                try
                {
                    File.WriteAllBytes(name, []);
                    _fillers.Add(name);
                }
                catch (IOException)
                {
                    return;
                }
            }

            throw new InvalidOperationException("the small file system did not run out of inodes");
        }

        public void Empty()
        {
            foreach (var filler in _fillers)
            {
                File.Delete(filler);
            }

            _fillers.Clear();
        }

        public void Dispose()
        {
            Empty();
            ProcessRunner.RunAsync("umount", ["-l", Path], TimeSpan.FromSeconds(30), CancellationToken.None).GetAwaiter().GetResult();
        }
    }
}

/// <summary>
/// Runs alone, with a pull-through fixture of its own: its alerts read the mirror's metrics, and the exporter
/// collects every meter named MirrorProxy in the process, so a mirror of a test running in parallel reports the same
/// series (its pin set complete while this one's lacks a layer). A production process hosts one mirror.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MonitoringCollection : ICollectionFixture<PullThroughFixture>
{
    public const string Name = "monitoring";
}
