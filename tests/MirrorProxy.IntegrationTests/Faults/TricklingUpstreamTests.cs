using System.Diagnostics;
using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// Blob bodies that never end usefully: one byte a second, or bytes for ever without a length. The download is
/// abandoned for every client (a broken response, never a complete-looking one) once the throughput window has
/// passed, or once it reaches <c>Cache:MaxBlobSize</c>; nothing is kept and <c>tmp/</c> is left empty.
/// </summary>
public sealed class TricklingUpstreamTests : IAsyncLifetime
{
    private const string Upstream = "trickle.test";
    private static readonly TimeSpan ThroughputWindow = TimeSpan.FromSeconds(3);
    private readonly TempDirectory _work = new("trickle");
    private HostileRegistry _registry = null!;
    private MirrorServer _mirror = null!;
    private TestImage _image = null!;

    public async Task InitializeAsync()
    {
        _image = OciImageFactory.BuildDockerImage("trickle/app", "1", "trickle");
        _registry = await HostileRegistry.StartAsync(_image);
        _mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [(Upstream, _registry.BaseUri)], new Dictionary<string, string?>
        {
            ["MirrorProxy:Upstreams:0:MinBlobThroughputWindow"] = "00:00:03",
            ["MirrorProxy:Upstreams:0:BreakDuration"] = "00:00:01",
            ["MirrorProxy:Cache:MaxBlobSize"] = "4MiB",
        });
    }

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        await _registry.DisposeAsync();
        _work.Dispose();
    }

    private string BlobUrl(OciBlob blob) => $"/v2/{_image.Repository}/blobs/{blob.Digest}?ns={Upstream}";

    [Fact]
    public async Task OneBytePerSecond_JoiningClientIsCutOffAfterTheThroughputWindow_NextRequestStartsAfresh()
    {
        var blob = _image.Layers.Single(l => l.Size > 100_000 && l.Size < 1_000_000);
        _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.Trickle());

        // The first client starts the download; the second joins it.
        using var first = await _mirror.Client.GetAsync(BlobUrl(blob), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var stopwatch = Stopwatch.StartNew();
        using var second = await _mirror.Client.GetAsync(BlobUrl(blob), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(blob.Size, second.Content.Headers.ContentLength);

        var secondFailure = await Record.ExceptionAsync(() => second.Content.ReadAsByteArrayAsync());
        var cutOffAfter = stopwatch.Elapsed;
        var firstFailure = await Record.ExceptionAsync(() => first.Content.ReadAsByteArrayAsync());

        Assert.True(secondFailure is HttpRequestException or IOException, $"expected a broken response, got {secondFailure?.GetType().Name ?? "a complete body"}");
        Assert.True(firstFailure is HttpRequestException or IOException, $"expected a broken response, got {firstFailure?.GetType().Name ?? "a complete body"}");
        Assert.True(cutOffAfter < ThroughputWindow + TimeSpan.FromSeconds(3), $"the joining client was cut off after {cutOffAfter.TotalSeconds:F1} s");
        Assert.Equal(1, _registry.Count(HostileEndpoints.BlobGet));
        await Eventually.TrueAsync(() => FaultSupport.TempFiles(_mirror.CacheDirectory) == 0, TimeSpan.FromSeconds(10), "the abandoned download's file is removed");
        Assert.False(File.Exists(FaultSupport.BlobFile(_mirror.CacheDirectory, blob.Digest)));

        // The next request does not find the abandoned download: it starts a new one, which now arrives whole.
        _registry.Heal();
        byte[]? body = null;
        await Eventually.TrueAsync(async () =>
        {
            using var again = await _mirror.Client.GetAsync(BlobUrl(blob));
            body = again.StatusCode == HttpStatusCode.OK ? await again.Content.ReadAsByteArrayAsync() : null;
            return body is not null;
        }, TimeSpan.FromSeconds(15), "a fresh download serves the blob");
        Assert.Equal(blob.Content, body);
        Assert.Equal(2, _registry.Count(HostileEndpoints.BlobGet));
        Assert.True(File.Exists(FaultSupport.BlobFile(_mirror.CacheDirectory, blob.Digest)));
    }

    [Fact]
    public async Task EndlessBodyWithoutLength_IsAbandonedAtMaxBlobSize_NothingKept()
    {
        var blob = _image.Layers.Single(l => l.Size > 1_000_000);
        _registry.Set(HostileEndpoints.BlobGet, HostileBehavior.EndlessBody());

        using var response = await _mirror.Client.GetAsync(BlobUrl(blob), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var stream = await response.Content.ReadAsStreamAsync();
        var received = 0L;
        var buffer = new byte[64 * 1024];
        var failure = await Record.ExceptionAsync(async () =>
        {
            // Bounded: the mirror must cut it off at 4 MiB; 64 MiB would mean it did not.
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0 && received < 64L << 20)
            {
                received += read;
            }
        });

        Assert.True(failure is HttpRequestException or IOException, $"expected a broken response, got {failure?.GetType().Name ?? "a complete body"} after {received} bytes");
        Assert.True(received <= 4L << 20, $"{received} bytes were relayed");
        await Eventually.TrueAsync(() => FaultSupport.TempFiles(_mirror.CacheDirectory) == 0, TimeSpan.FromSeconds(10), "the abandoned download's file is removed");
        Assert.False(File.Exists(FaultSupport.BlobFile(_mirror.CacheDirectory, blob.Digest)));
        _registry.Heal();
    }
}
