using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using MirrorProxy.Cache;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Support;
using MirrorProxy.Oci;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// The status page at <c>/</c> in Debian's headless Chromium, against a mirror in a known state: one pin set
/// complete, one missing a layer, one upstream unreachable with a failed pull, a size budget. Each section is
/// checked in the DOM; the page must load nothing but itself, fit a 390 px phone without horizontal scrolling,
/// and a screenshot of each width is kept under the test output.
/// </summary>
[Collection(PullThroughCollection.Name)]
public sealed class StatusPageTests(PullThroughFixture fixture, ITestOutputHelper log) : IDisposable
{
    private readonly TempDirectory _work = new("status-page");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task StatusPage_InChromium_AnswersEachQuestionAndFitsAPhone()
    {
        var watch = Stopwatch.StartNew();
        var closed = new Uri($"http://127.0.0.1:{LoopbackPortThatIsClosed()}");
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", fixture.Upstream.BaseUri), ("quay.io", closed)],
            new Dictionary<string, string?> { ["MirrorProxy:Cache:MaxSize"] = "2GiB" });
        var busybox = $"docker.io/{fixture.DockerImage.Repository}:{fixture.DockerImage.Tag}";
        var app = $"docker.io/{fixture.MultiArch.Repository}:{fixture.MultiArch.Tag}";
        await WarmAsync(mirror, "cluster", busybox);
        await WarmAsync(mirror, "apps", app);
        var lost = fixture.MultiArch.Manifests.First().Layers.First();
        Assert.True(Digest.TryParse(lost.Digest, out var digest));
        File.Delete(mirror.BlobPath(digest));
        await WaitUntilReportedMissingAsync(mirror, "apps");
        for (var i = 0; i < 3; i++)
        {
            using var failed = await mirror.Client.GetAsync($"/v2/org/tool/manifests/2.{i}?ns=quay.io");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        }

        using var page = await mirror.Client.GetAsync("/");
        page.EnsureSuccessStatusCode();
        var bytes = (await page.Content.ReadAsByteArrayAsync()).Length;
        Assert.Equal("text/html; charset=utf-8", page.Content.Headers.ContentType?.ToString());
        Assert.Contains("default-src 'none'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);

        await using var chromium = await HeadlessChromium.StartAsync();
        var artifacts = Path.Combine(AppContext.BaseDirectory, "artifacts");
        Directory.CreateDirectory(artifacts);
        JsonObject? phone = null;
        foreach (var (width, mobile) in new[] { (390, true), (1280, false) })
        {
            await chromium.SetViewportAsync(width, 800, mobile);
            await chromium.NavigateAsync(mirror.BaseUri);
            var dom = (await chromium.EvaluateAsync(DomFacts))!.AsObject();
            var screenshot = Path.Combine(artifacts, $"status-page-{width}px.png");
            await File.WriteAllBytesAsync(screenshot, await chromium.ScreenshotAsync());
            log.WriteLine($"screenshot: {screenshot}");
            Console.WriteLine($"status page screenshot: {screenshot}");

            Assert.True((int)dom["scrollWidth"]! <= (int)dom["innerWidth"]!, $"at {width} px the page scrolls sideways: {dom.ToJsonString()}");
            Assert.Equal(0, (int)dom["scripts"]!);
            Assert.Equal(0, (int)dom["resources"]!);
            phone ??= dom;
        }

        // Can we sail? Not with a pin set missing content.
        Assert.Equal("false", (string?)phone!["canSail"]);
        Assert.Equal("Not ready to sail", (string?)phone["verdict"]);
        Assert.Contains((phone["reasons"] as JsonArray)!.Select(r => (string)r!), r => r.StartsWith("Pin set apps lacks 1 of ", StringComparison.Ordinal));

        // Upstreams and the offline switch.
        var upstreams = phone["upstreams"]!.AsArray().Select(u => ((string)u!["name"]!, (string)u["state"]!)).ToList();
        Assert.Equal([("docker.io", "healthy"), ("quay.io", "down")], upstreams);
        Assert.Equal("false", (string?)phone["offline"]);

        // Cache use against the budget, and free disk.
        Assert.Equal(mirror.GetService<MirrorCache>().TotalBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)phone["used"]);
        Assert.Equal((2L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)phone["budget"]);
        Assert.True(long.Parse((string)phone["free"]!, System.Globalization.CultureInfo.InvariantCulture) > 0);

        // Pin sets: complete, and incomplete naming the image that lacks content.
        var pins = phone["pins"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => p!.AsObject());
        Assert.Equal("0", (string?)pins["cluster"]["missing"]);
        Assert.Equal("1", (string?)pins["apps"]["missing"]);
        Assert.Contains(app, (string?)pins["apps"]["incomplete"], StringComparison.Ordinal);
        Assert.Contains(lost.Digest, (string?)pins["apps"]["incomplete"], StringComparison.Ordinal);
        Assert.StartsWith("Last warm-up: ", (string?)phone["warmup"], StringComparison.Ordinal);
        Assert.Contains("pin set apps", (string?)phone["warmup"], StringComparison.Ordinal);

        // What nodes asked for and the mirror could not serve, newest first.
        var failures = phone["failures"]!.AsArray().Select(f => (string)f!).ToList();
        Assert.Equal(3, failures.Count);
        Assert.Contains("quay.io/org/tool:2.2", failures[0], StringComparison.Ordinal);
        Assert.Contains("503 upstream quay.io is unavailable", failures[0], StringComparison.Ordinal);
        Assert.Contains("quay.io/org/tool:2.0", failures[2], StringComparison.Ordinal);

        log.WriteLine($"status page: {bytes} bytes; Chromium test took {watch.Elapsed.TotalSeconds:0.0} s");
        Console.WriteLine($"status page: {bytes} bytes; Chromium test took {watch.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>What the page shows, read from its DOM.</summary>
    private const string DomFacts = """
        JSON.parse(JSON.stringify({
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          scripts: document.scripts.length,
          resources: performance.getEntriesByType('resource').length,
          canSail: document.getElementById('verdict').dataset.canSail,
          verdict: document.querySelector('#verdict h1').textContent,
          reasons: [...document.querySelectorAll('#verdict li')].map(li => li.textContent),
          offline: document.getElementById('offline').dataset.offline,
          upstreams: [...document.querySelectorAll('#upstreams tr[data-upstream]')].map(tr => ({ name: tr.dataset.upstream, state: tr.dataset.state })),
          used: document.querySelector('[data-used-bytes]').dataset.usedBytes,
          budget: document.querySelector('[data-budget-bytes]')?.dataset.budgetBytes,
          free: document.getElementById('disk').dataset.freeBytes,
          pins: [...document.querySelectorAll('.pinset')].map(p => ({ name: p.dataset.pinSet, missing: p.dataset.missing,
            incomplete: [...p.querySelectorAll('tr.incomplete')].map(tr => tr.textContent).join('\n') })),
          warmup: document.getElementById('warmup').textContent,
          failures: [...document.querySelectorAll('#failures tr.failure')].map(tr => tr.textContent),
        }))
        """;

    /// <summary>
    /// The mirror counts a pin set's missing objects from the store at most every 2 s (readiness and metrics ask
    /// often), and <c>warm</c> has just counted "apps" complete: the page is read once the count has seen the
    /// deleted layer, as it must within that lifetime.
    /// </summary>
    private static async Task WaitUntilReportedMissingAsync(MirrorServer mirror, string pinSet)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var sets = JsonNode.Parse(await mirror.Client.GetStringAsync("/admin/pins"))!.AsArray();
            var missing = (int)sets.Single(s => (string?)s!["name"] == pinSet)!["missing"]!;
            if (missing == 1)
            {
                return;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"pin set {pinSet} still reported {missing} missing objects {watch.Elapsed.TotalSeconds:0.0} s after a layer was deleted");
            await Task.Delay(100);
        }
    }

    private async Task WarmAsync(MirrorServer mirror, string pinSet, string image)
    {
        var images = _work.Combine($"{pinSet}.txt");
        await File.WriteAllTextAsync(images, image + "\n");
        var output = new StringWriter();
        var exit = await MirrorProxyCli.InvokeAsync(["warm", "--server", mirror.BaseUri.ToString(), "--images", images, "--platform", "all", "--pin-set", pinSet],
            new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
        Assert.True(exit == 0, output.ToString());
    }

    private static int LoopbackPortThatIsClosed()
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
