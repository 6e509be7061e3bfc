using System.CommandLine;
using System.Net;
using System.Text.Json;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>Warm-up and pinning through the CLI, and the size budget, against a real upstream.</summary>
public sealed class WarmUpAndEvictionTests : IAsyncLifetime
{
    private readonly TempDirectory _work = new("warm");
    private TestRegistry _registry = null!;
    private TestImage _multiArch = null!;
    private TestImage _docker = null!;
    private TestImage[] _others = [];

    public async Task InitializeAsync()
    {
        _registry = await TestRegistry.StartAsync();
        _multiArch = await OciImageFactory.PushMultiArchImageAsync(_registry, "warm/app", "1", "warm-multi");
        _docker = await OciImageFactory.PushDockerImageAsync(_registry, "warm/tool", "2", "warm-docker");
        _others = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => OciImageFactory.PushDockerImageAsync(_registry, $"extra/img{i}", "1", $"extra-{i}")));
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private async Task<(int ExitCode, string Output)> RunCliAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output + error.ToString());
    }

    private string ImagesFile(params string[] images)
    {
        var file = _work.Combine(Guid.NewGuid().ToString("N") + ".txt");
        File.WriteAllText(file, string.Join('\n', images) + "\n");
        return file;
    }

    [Fact]
    public async Task Warm_AllPlatforms_ThenCheckPasses_RerunFetchesNothing_AndDroppedImagesAreUnpinned()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)]);
        var server = mirror.BaseUri.ToString();
        var both = ImagesFile($"{_multiArch.Repository}:{_multiArch.Tag}", $"docker.io/{_docker.Repository}:{_docker.Tag}");

        var (exit, output) = await RunCliAsync("warm", "--server", server, "--images", both, "--platform", "all");
        Assert.True(exit == 0, output);
        Assert.DoesNotContain('\u001b', output); // not a terminal: plain lines, no escape sequences
        Assert.Contains($"warmed {_multiArch.Repository}:{_multiArch.Tag}", output, StringComparison.Ordinal);
        Assert.Contains("summary: 2 images, 2 warmed, 0 already cached, 0 failed", output, StringComparison.Ordinal);
        Assert.Contains("pinned as 'default'", output, StringComparison.Ordinal);

        (exit, output) = await RunCliAsync("check", "--server", server, "--images", both, "--platform", "all");
        Assert.True(exit == 0, output);

        var blobGets = await _registry.CountRequestsAsync("GET", "/blobs/");
        (exit, output) = await RunCliAsync("warm", "--server", server, "--images", both, "--platform", "all");
        Assert.True(exit == 0, output);
        Assert.Contains("summary: 2 images, 0 warmed, 2 already cached, 0 failed, 0 not mirrored; 0 bytes fetched", output, StringComparison.Ordinal);
        Assert.Equal(blobGets, await _registry.CountRequestsAsync("GET", "/blobs/"));

        var pins = await PinSetAsync(mirror, "default");
        Assert.Equal(2, pins.GetProperty("images").GetArrayLength());
        var allDigests = _multiArch.Blobs.Select(b => b.Digest).Concat(_multiArch.Manifests.Select(m => m.Digest)).Append(_multiArch.Digest);
        var pinnedDigests = pins.GetProperty("digests").EnumerateArray().Select(d => d.GetString()).ToHashSet();
        Assert.All(allDigests, digest => Assert.Contains(digest, pinnedDigests));

        (exit, output) = await RunCliAsync("warm", "--server", server, "--images", ImagesFile($"{_multiArch.Repository}:{_multiArch.Tag}"), "--platform", "all");
        Assert.True(exit == 0, output);
        pins = await PinSetAsync(mirror, "default");
        Assert.Equal([$"{_multiArch.Repository}:{_multiArch.Tag}"], pins.GetProperty("images").EnumerateArray().Select(i => i.GetString()));
        Assert.DoesNotContain(_docker.Layers.First().Digest, pins.GetProperty("digests").EnumerateArray().Select(d => d.GetString()));
    }

    [Fact]
    public async Task SmallBudget_EvictsOnlyUnpinnedContent_PinnedImageStaysComplete()
    {
        var pinnedBytes = _multiArch.Blobs.Sum(b => b.Size) + _multiArch.Manifests.Sum(m => m.Size) + _multiArch.ManifestSize;
        var budget = pinnedBytes + 512 * 1024;
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)], new Dictionary<string, string?>
        {
            ["MirrorProxy:Cache:MaxSize"] = budget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MirrorProxy:Cache:EvictionInterval"] = "00:00:00.200",
        });
        var pinned = ImagesFile($"{_multiArch.Repository}:{_multiArch.Tag}");
        var (exit, output) = await RunCliAsync("warm", "--server", mirror.BaseUri.ToString(), "--images", pinned, "--platform", "all", "--pin-set", "island");
        Assert.True(exit == 0, output);

        foreach (var image in _others)
        {
            Assert.Equal(image.ManifestBytes, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io"));
            foreach (var blob in image.Blobs)
            {
                Assert.Equal(blob.Content, await mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=docker.io"));
            }
        }

        var unpinnedBytes = _others.Sum(i => i.Blobs.Sum(b => b.Size) + i.ManifestSize);
        Assert.True(pinnedBytes + unpinnedBytes > budget, "the test must pull more than the budget");
        await Eventually.TrueAsync(() => CacheBytes(mirror.CacheDirectory) <= budget, TimeSpan.FromSeconds(20), "eviction brings the cache within its budget");

        (exit, output) = await RunCliAsync("check", "--server", mirror.BaseUri.ToString(), "--images", pinned, "--platform", "all");
        Assert.True(exit == 0, output);
        var evicted = _others.SelectMany(i => i.Blobs).Count(b => !File.Exists(BlobFile(mirror.CacheDirectory, b.Digest)));
        Assert.True(evicted > 0);
        var metrics = new PrometheusText(await mirror.Client.GetStringAsync("/metrics"));
        Assert.Equal(0, metrics.Sum("mirrorproxy_pins_missing_objects", ("pin_set", "island")));
    }

    [Fact]
    public async Task BlobLargerThanTheWholeBudget_IsServedButNotKept()
    {
        var large = await OciImageFactory.PushLargeBlobImageAsync(_registry, "warm/large", "1", "warm-large", 8L * 1024 * 1024);
        var layer = large.Layers.Single();
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", _registry.BaseUri)],
            new Dictionary<string, string?> { ["MirrorProxy:Cache:MaxSize"] = "2MiB" });

        using var response = await mirror.Client.GetAsync($"/v2/{large.Repository}/blobs/{layer.Digest}?ns=docker.io");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(layer.Digest, OciMediaTypes.Digest(await response.Content.ReadAsByteArrayAsync()));
        await Eventually.TrueAsync(() => Directory.GetFiles(Path.Combine(mirror.CacheDirectory, "tmp")).Length == 0, TimeSpan.FromSeconds(10), "the download's temporary file is removed");
        Assert.False(File.Exists(BlobFile(mirror.CacheDirectory, layer.Digest)));
    }

    private static async Task<JsonElement> PinSetAsync(MirrorServer mirror, string name)
    {
        using var json = JsonDocument.Parse(await mirror.Client.GetByteArrayAsync($"/admin/pins/{name}"));
        return json.RootElement.Clone();
    }

    internal static string BlobFile(string cache, string digest) => Path.Combine(cache, "blobs", "sha256", digest[7..9], digest[7..]);

    private static long CacheBytes(string cache) =>
        Directory.EnumerateFiles(Path.Combine(cache, "blobs"), "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".type", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length);
}
