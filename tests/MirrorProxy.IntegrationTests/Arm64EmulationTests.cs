using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// The linux-arm64 builds (what a Raspberry Pi runs), published from the repository and run under
/// qemu-aarch64-static, serve a real client's pull. This shows the arm64 programs work, not how fast they are.
/// </summary>
[Collection(PullThroughCollection.Name)]
public sealed class Arm64EmulationTests(PullThroughFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("arm64");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task Arm64Build_UnderEmulation_ServesASkopeoPull()
    {
        var program = await PublishAsync(["--self-contained"]);

        // qemu-user keeps its translation of code the runtime later rewrites through the second, writable
        // mapping W^X uses (presumably the GC write barrier, which changes with DATAS's heap count), so under
        // qemu the JIT build runs with W^X off. Hardware sees the rewrite; the Native AOT build rewrites no code.
        await ServesASkopeoPullAsync(["-E", "DOTNET_EnableWriteXorExecute=0", program], "JIT");
    }

    [Fact]
    public async Task Arm64NativeAotBuild_UnderEmulation_ServesASkopeoPull()
    {
        // The container image's build: Native AOT, cross-compiled with clang and lld (see the Dockerfile).
        var program = await PublishAsync(["-p:PublishAot=true", "-p:LinkerFlavor=lld", "-p:ObjCopyName=llvm-objcopy"]);

        await ServesASkopeoPullAsync([program], "Native AOT");
    }

    private async Task<string> PublishAsync(IEnumerable<string> options)
    {
        var output = _work.Combine("publish");
        (await ProcessRunner.RunAsync("dotnet",
            ["publish", Path.Combine(RepositoryRoot.Path, "src", "MirrorProxy"), "-c", "Release", "-r", "linux-arm64", .. options, "-o", output, "-nologo"],
            TimeSpan.FromMinutes(8), CancellationToken.None)).EnsureSuccess();
        var program = Path.Combine(output, "mirrorproxy");

        // ELF header: e_machine 0xB7 is AArch64.
        var header = new byte[20];
        await using (var file = File.OpenRead(program))
        {
            await file.ReadExactlyAsync(header);
        }

        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F'], header[..4]);
        Assert.Equal(0xB7, BitConverter.ToUInt16(header, 18));
        return program;
    }

    private async Task ServesASkopeoPullAsync(IEnumerable<string> qemuArguments, string compilation)
    {
        await using var mirror = await MirrorProcess.StartAsync("qemu-aarch64-static", qemuArguments, _work.Combine("cache"),
            ["--upstream", $"docker.io={fixture.Upstream.BaseUri}", "--max-cache-size", "48MiB"], TimeSpan.FromMinutes(2));

        // The build runs as shipped: arm64, the server GC with DATAS and the compiled-in 8 MiB gen0 cap
        // (as measured in benchmarks/README.md).
        var runtime = await mirror.RuntimeLineAsync();
        Assert.Contains($"arm64, {compilation}, server (DATAS) GC", runtime, StringComparison.Ordinal);
        Assert.Contains("a gen0 budget of at most 8 MiB", runtime, StringComparison.Ordinal);

        var image = fixture.DockerImage;
        (await Skopeo.CopyAsync($"docker://{mirror.BaseUri.Authority}/docker.io/{image.Repository}:{image.Tag}", $"oci:{_work.Combine("pulled")}:x", all: true,
            new SkopeoCopyOptions { Timeout = TimeSpan.FromMinutes(3) })).EnsureSuccess();

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await File.ReadAllBytesAsync(_work.Combine("pulled", "blobs", "sha256", blob.Hex)));
        }

        // Size options are read as text in every build: a trimmed, AOT-compiled binder once left them at their defaults.
        var metrics = new PrometheusText(await mirror.Client.GetStringAsync("/metrics"));
        Assert.Equal(48 * 1024 * 1024, metrics.Sum("mirrorproxy_cache_budget_bytes"));
    }
}
