using MirrorProxy.Common;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests.Bundles;

/// <summary>kill -9 of the mirror or of the importing CLI in the middle of an import: the cache stays consistent and a re-run finishes the job.</summary>
[Collection(BundleCollection.Name)]
public sealed class BundleCrashTests(BundleFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("bundle-crash");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task MirrorKilledMidImport_RestartsClean_AndARerunCompletes()
    {
        var cache = _work.Combine("island");
        var tar = await File.ReadAllBytesAsync(fixture.FullTar);
        await using (var island = await MirrorProcess.StartAsync(cache, ["--offline", "--upstream", "docker.io=http://127.0.0.1:1"]))
        {
            // The bundle arrives up to 70% and then stalls, as a slow USB stick would; the mirror dies meanwhile.
            var stall = new TaskCompletionSource();
            using var body = new StallingStream(tar, (int)(tar.Length * 0.7), stall.Task);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/bundles/import?allowUnsigned=true") { Content = new StreamContent(body) };
            var sending = island.Client.SendAsync(request);
            await Eventually.TrueAsync(() => StagedBytes(cache) > 0 && body.Stalled, TimeSpan.FromSeconds(30), "the import stages files");
            await island.KillAsync();
            stall.SetResult();
            await Assert.ThrowsAnyAsync<Exception>(() => sending);
        }

        Assert.False(Directory.Exists(Path.Combine(cache, "tags")) && Directory.EnumerateFiles(Path.Combine(cache, "tags"), "*", SearchOption.AllDirectories).Any());
        await using (var restarted = await MirrorProcess.StartAsync(cache, ["--offline", "--upstream", "docker.io=http://127.0.0.1:1"]))
        {
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(cache, "tmp")));
            using (var before = await restarted.Client.GetAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io"))
            {
                Assert.False(before.IsSuccessStatusCode);
            }

            var (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", restarted.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fixture.FullTar);
            Assert.True(exit == 0, output);
            await AssertServedAsync(restarted.Client);
        }
    }

    [Fact]
    public async Task CliKilledMidImport_LeavesNothingStaged_AndARerunCompletes()
    {
        var cache = _work.Combine("island");
        await using var island = await BundleFixture.StartIslandAsync(cache);
        var fifo = _work.Combine("bundle.tar");
        (await ProcessRunner.RunAsync("mkfifo", [fifo], TimeSpan.FromSeconds(10), CancellationToken.None)).EnsureSuccess();

        var program = Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } native ? (native, Array.Empty<string>()) : ("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll")]);
        await using var cli = ProcessRunner.Start(program.Item1, [.. program.Item2, "bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fifo]);

        // Feed the CLI 70% of the bundle through the pipe, then kill it while it waits for more.
        var tar = await File.ReadAllBytesAsync(fixture.FullTar);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            await using var pipe = new FileStream(fifo, FileMode.Open, FileAccess.Write);
            await pipe.WriteAsync(tar.AsMemory(0, (int)(tar.Length * 0.7)));
            await pipe.FlushAsync();
            await Task.Delay(Timeout.Infinite, stop.Token);
        });
        await Eventually.TrueAsync(() => StagedBytes(cache) > 0, TimeSpan.FromSeconds(30), "the import stages files");
        await cli.KillAsync();

        // The mirror sees the request end early: it refuses the bundle and removes what it staged.
        await Eventually.TrueAsync(() => !Directory.EnumerateFiles(Path.Combine(cache, "tmp")).Any(), TimeSpan.FromSeconds(30), "staging is removed");
        BundleRefusalTests.AssertNothingImported(cache);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => writer);

        var (exit, output) = await BundleFixture.CliAsync("bundle", "import", "--server", island.BaseUri.ToString(), "--trust", fixture.SigningPublicKey, fixture.FullTar);
        Assert.True(exit == 0, output);
        await AssertServedAsync(island.Client);
    }

    private Task AssertServedAsync(HttpClient client) => AssertServedAsync(fixture, client);

    /// <summary>The fixture's images, manifest and every blob, served with their bytes.</summary>
    internal static async Task AssertServedAsync(BundleFixture fixture, HttpClient client)
    {
        Assert.Equal(fixture.MultiArch.ManifestBytes, await client.GetByteArrayAsync($"/v2/{fixture.MultiArch.Repository}/manifests/{fixture.MultiArch.Tag}?ns=docker.io"));
        foreach (var blob in fixture.MultiArch.Blobs.Concat(fixture.Docker.Blobs))
        {
            Assert.Equal(blob.Content, await client.GetByteArrayAsync($"/v2/{fixture.MultiArch.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }
    }

    internal static long StagedBytes(string cache)
    {
        var tmp = Path.Combine(cache, "tmp");
        // A staged file can be committed (moved away) between the listing and its size: it counts as 0.
        return Directory.Exists(tmp) ? Directory.EnumerateFiles(tmp).Select(f => new FileInfo(f)).Sum(f => f.Exists ? f.Length : 0) : 0;
    }

    /// <summary>
    /// Serves the first bytes of a buffer, then waits for a signal before it ends the stream (or, with
    /// <paramref name="thenTheRest"/>, goes on to the buffer's end).
    /// </summary>
    internal sealed class StallingStream(byte[] content, int stallAt, Task resume, bool thenTheRest = false) : ReadOnlyStream
    {
        private int _position;

        public bool Stalled { get; private set; }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= stallAt)
            {
                Stalled = true;
                await resume.WaitAsync(cancellationToken);
            }

            var end = _position < stallAt || !thenTheRest ? stallAt : content.Length;
            if (_position >= end)
            {
                return 0;
            }

            var count = Math.Min(buffer.Length, end - _position);
            content.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }
    }
}
