using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// Cached files damaged behind the mirror's back (a flipped bit on an SD card, a file cut short by a crash or a
/// careless copy), in the real program: the scrub finds and quarantines a large blob with a flipped byte, small
/// content is hashed when loaded, a short file is never served as a complete answer, before or after a restart
/// (clean or kill -9); what was found damaged is fetched again when the upstream is there and is an error when it
/// is not, never a 200 with wrong or missing bytes. <c>mirrorproxy verify</c> names the damage offline, and the
/// image check reports quarantined content as missing.
/// </summary>
/// <remarks>
/// A large blob that this mirror wrote and verified is not hashed again on every read (only its size is checked
/// when it is opened): a byte flipped in it later is served as it is until the scrub reaches it. So the flip tests
/// wait for the scrub; a file cut short, or one the index learned from the files after a crash, is caught on the
/// request path itself.
/// </remarks>
public sealed class DamagedCacheTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Upstream = "docker.io";
    private static readonly Dictionary<string, string> FastScrub = new()
    {
        ["MirrorProxy:Cache:ScrubRate"] = "1GiB",
        ["MirrorProxy:Cache:ScrubInterval"] = "00:00:01",
        ["MirrorProxy:Cache:ScrubStartDelay"] = "00:00:00",
        ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
    };

    /// <summary>The request path alone: no scrub to find the damage first.</summary>
    private static readonly Dictionary<string, string> NoScrub = new()
    {
        ["MirrorProxy:Cache:ScrubRate"] = "0",
        ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
    };

    private readonly TempDirectory _work = new("damaged");
    private TestRegistry _registry = null!;
    private TestImage _image = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        _image = await OciImageFactory.PushDockerImageAsync(_registry, "damaged/app", "1", "damaged");
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private string Cache => _work.Combine("cache");

    /// <summary>The 3 MB layer: served from its file, never held in memory.</summary>
    private OciBlob Large => _image.Layers.Single(l => l.Size > 1_000_000);

    /// <summary>The 2 KB layer: loaded into memory (and hashed) when served.</summary>
    private OciBlob Small => _image.Layers.Single(l => l.Size < 10_000);

    private string BlobUrl(OciBlob blob) => $"/v2/{_image.Repository}/blobs/{blob.Digest}";

    private string TagUrl => $"/v2/{_image.Repository}/manifests/{_image.Tag}";

    private Task<MirrorProcess> StartAsync(IReadOnlyDictionary<string, string> settings) =>
        FaultSupport.StartProgramAsync(_work, Cache, Upstream, _registry.BaseUri, settings);

    private async Task PullAllAsync(MirrorProcess mirror)
    {
        using (var tag = await FaultSupport.GetManifestAsync(mirror.Client, TagUrl))
        {
            Assert.Equal(_image.ManifestBytes, await tag.Content.ReadAsByteArrayAsync());
        }

        foreach (var blob in _image.Blobs)
        {
            Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync(BlobUrl(blob)));
        }
    }

    private static void FlipByte(string file, long offset)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var value = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(value ^ 0x01));
    }

    private static void Truncate(string file, long length)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Write);
        stream.SetLength(length);
    }

    private static async Task<double> QuarantinedAsync(MirrorProcess mirror, string reason) =>
        (await FaultSupport.ScrapeAsync(mirror.Client)).Sum("mirrorproxy_cache_quarantined_total", ("reason", reason));

    /// <summary>
    /// Whole and ranged, the blob is either answered with exactly its bytes (or a response that breaks off, which a
    /// client cannot take for complete) or 503: never a 200 or 206 with wrong or missing bytes.
    /// </summary>
    private static async Task AssertNeverWrongAsync(HttpClient client, string url, OciBlob blob)
    {
        using (var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead))
        {
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var body = await Record.ExceptionAsync(async () => Assert.Equal(blob.Content, await response.Content.ReadAsByteArrayAsync()));
                Assert.True(body is null or HttpRequestException or IOException, $"a 200 for {url} carried wrong bytes: {body?.Message}");
            }
            else
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            }
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, url) { Headers = { Range = new RangeHeaderValue(blob.Size / 2 - 10, blob.Size / 2 + 10) } };
        using var ranged = await client.SendAsync(request);
        if (ranged.StatusCode == HttpStatusCode.PartialContent)
        {
            Assert.Equal(blob.Content.AsSpan((int)(blob.Size / 2 - 10), 21).ToArray(), await ranged.Content.ReadAsByteArrayAsync());
        }
        else
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ranged.StatusCode);
        }
    }

    [Fact]
    public async Task LargeBlobWithAFlippedByte_ScrubQuarantinesIt_UnavailableWhileTheUpstreamIsGone_RefetchedWhenItIsBack()
    {
        await using var mirror = await StartAsync(FastScrub);
        await PullAllAsync(mirror);
        var reference = $"{Upstream}/{_image.Repository}:{_image.Tag}";
        Assert.Equal(0, (await CheckAsync(mirror, reference)).ExitCode);
        var before = await QuarantinedAsync(mirror, "digest");
        await _registry.StopAsync();

        FlipByte(FaultSupport.BlobFile(Cache, Large.Digest), Large.Size / 2);

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await Eventually.TrueAsync(async () => await QuarantinedAsync(mirror, "digest") >= before + 1, TimeSpan.FromSeconds(20), "the scrub quarantines the blob");
        output.WriteLine($"scrub quarantined the flipped blob {stopwatch.Elapsed.TotalMilliseconds:F0} ms after the flip");
        Assert.False(File.Exists(FaultSupport.BlobFile(Cache, Large.Digest)));
        Assert.Contains(Directory.GetFiles(Path.Combine(Cache, "quarantine")), f => Path.GetFileName(f).StartsWith("sha256-" + Large.Hex, StringComparison.Ordinal));

        // With the upstream gone the blob is unavailable: never the damaged bytes.
        using (var response = await mirror.Client.GetAsync(BlobUrl(Large)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("UNAVAILABLE", await FaultSupport.ErrorCodeAsync(response));
        }

        await AssertNeverWrongAsync(mirror.Client, BlobUrl(Large), Large);

        // The check answers for the cache as it is: the layer is missing, by the HTTP API and by the program's check.
        using (var status = await mirror.Client.PostAsync("/status/images", JsonContent(new { images = new[] { reference }, platforms = "linux/amd64" })))
        {
            using var json = JsonDocument.Parse(await status.Content.ReadAsByteArrayAsync());
            var result = json.RootElement.GetProperty("images")[0];
            Assert.Equal("missing", result.GetProperty("status").GetString());
            Assert.Contains(result.GetProperty("missing").EnumerateArray(), m => m.GetString()!.Contains(Large.Digest, StringComparison.Ordinal));
        }

        var check = await CheckAsync(mirror, reference);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains(Large.Digest, check.StandardOutput, StringComparison.Ordinal);

        // Once the upstream is back, the next request fetches the blob again, whole and right.
        await _registry.StartAgainAsync();
        Assert.Equal(Large.Content, await GetWhenUpstreamIsBackAsync(mirror, BlobUrl(Large)));
        Assert.Equal(2, await _registry.CountRequestsAsync("GET", "/blobs/" + Large.Digest));
        Assert.Equal(0, (await CheckAsync(mirror, reference)).ExitCode);
    }

    /// <param name="restart">none: the file is cut short under the running mirror; clean: while it is stopped (SIGTERM); killed: after a kill -9.</param>
    [Theory]
    [InlineData("none")]
    [InlineData("clean")]
    [InlineData("killed")]
    public async Task TruncatedLargeBlob_IsNeverServedShort_BeforeOrAfterARestart_RefetchedWhenTheUpstreamIsThere(string restart)
    {
        var mirror = await StartAsync(NoScrub);
        try
        {
            await PullAllAsync(mirror);
            switch (restart)
            {
                case "clean":
                    await mirror.StopAsync();
                    break;
                case "killed":
                    await mirror.KillAsync();
                    break;
            }

            Truncate(FaultSupport.BlobFile(Cache, Large.Digest), Large.Size / 2);
            await _registry.StopAsync();
            if (restart != "none")
            {
                await mirror.DisposeAsync();
                mirror = await StartAsync(NoScrub);
            }

            using (var head = await mirror.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, BlobUrl(Large))))
            {
                Assert.True(head.StatusCode != HttpStatusCode.OK || head.Content.Headers.ContentLength == Large.Size, $"HEAD answered 200 with length {head.Content.Headers.ContentLength}");
            }

            await AssertNeverWrongAsync(mirror.Client, BlobUrl(Large), Large);

            await _registry.StartAgainAsync();
            Assert.Equal(Large.Content, await GetWhenUpstreamIsBackAsync(mirror, BlobUrl(Large)));
            Assert.Equal(Large.Size, new FileInfo(FaultSupport.BlobFile(Cache, Large.Digest)).Length);
        }
        finally
        {
            await mirror.DisposeAsync();
        }
    }

    [Fact]
    public async Task SmallBlobAndManifestWithAFlippedByte_AreHashedOnLoadAfterARestart_NeverServedWrong()
    {
        await using (var first = await StartAsync(NoScrub))
        {
            await PullAllAsync(first);
            await first.StopAsync();
        }

        FlipByte(FaultSupport.BlobFile(Cache, Small.Digest), 100);
        FlipByte(FaultSupport.BlobFile(Cache, _image.Digest), 100);
        await _registry.StopAsync();

        await using var mirror = await StartAsync(NoScrub);
        foreach (var url in new[] { BlobUrl(Small), TagUrl, $"/v2/{_image.Repository}/manifests/{_image.Digest}" })
        {
            using var response = await FaultSupport.GetManifestAsync(mirror.Client, url);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        Assert.Equal(2, await QuarantinedAsync(mirror, "digest"));

        await _registry.StartAgainAsync();
        Assert.Equal(Small.Content, await GetWhenUpstreamIsBackAsync(mirror, BlobUrl(Small)));
        Assert.Equal(_image.ManifestBytes, await GetWhenUpstreamIsBackAsync(mirror, TagUrl));
    }

    [Fact]
    public async Task Verify_CleanCacheExitsZero_DamagedCacheExitsOneNamingEachDamagedDigest()
    {
        await using (var mirror = await StartAsync(NoScrub))
        {
            await PullAllAsync(mirror);
            await mirror.StopAsync();
        }

        var clean = await MirrorProcess.RunCommandAsync(["verify", "--cache", Cache], TimeSpan.FromSeconds(60));
        Assert.True(clean.ExitCode == 0, clean.Describe());

        FlipByte(FaultSupport.BlobFile(Cache, Large.Digest), Large.Size / 3);
        Truncate(FaultSupport.BlobFile(Cache, Small.Digest), Small.Size - 1);
        var damaged = await MirrorProcess.RunCommandAsync(["verify", "--cache", Cache], TimeSpan.FromSeconds(60));

        Assert.True(damaged.ExitCode == 1, damaged.Describe());
        Assert.Contains($"DAMAGED {Large.Digest}", damaged.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"DAMAGED {Small.Digest}", damaged.StandardOutput, StringComparison.Ordinal);
        foreach (var intact in _image.Blobs.Where(b => b != Large && b != Small))
        {
            Assert.DoesNotContain(intact.Digest, damaged.StandardOutput, StringComparison.Ordinal);
        }
    }

    /// <summary>GETs until the probe has found the upstream back (bounded), and returns the body of the 200.</summary>
    private static async Task<byte[]> GetWhenUpstreamIsBackAsync(MirrorProcess mirror, string url)
    {
        byte[]? body = null;
        await Eventually.TrueAsync(async () =>
        {
            using var response = await FaultSupport.GetManifestAsync(mirror.Client, url);
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{url}: {(int)response.StatusCode}");
            body = response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadAsByteArrayAsync() : null;
            return body is not null;
        }, TimeSpan.FromSeconds(15), $"{url} is served once the upstream is back");
        return body!;
    }

    private async Task<ProcessResult> CheckAsync(MirrorProcess mirror, string reference)
    {
        var list = _work.Combine($"images-{Guid.NewGuid():N}.txt");
        await File.WriteAllTextAsync(list, reference + "\n");
        return await MirrorProcess.RunCommandAsync(["check", "--server", mirror.BaseUri.ToString(), "--images", list, "--platform", "linux/amd64"], TimeSpan.FromSeconds(60));
    }

    private static StringContent JsonContent(object value) => new(JsonSerializer.Serialize(value), System.Text.Encoding.UTF8, "application/json");
}
