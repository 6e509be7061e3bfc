using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// The linux-arm64 build (what a Raspberry Pi runs), published from the repository and run under
/// qemu-aarch64-static, serves a real client's pull. This shows the arm64 program works, not how fast it is.
/// </summary>
[Collection(PullThroughCollection.Name)]
public sealed class Arm64EmulationTests(PullThroughFixture fixture) : IDisposable
{
    private readonly TempDirectory _work = new("arm64");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task Arm64Build_UnderEmulation_ServesASkopeoPull()
    {
        var output = _work.Combine("publish");
        (await ProcessRunner.RunAsync("dotnet",
            ["publish", Path.Combine(RepositoryRoot.Path, "src", "MirrorProxy"), "-c", "Release", "-r", "linux-arm64", "--self-contained", "-o", output, "-nologo"],
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

        await using var mirror = await MirrorProcess.StartAsync("qemu-aarch64-static", [program], _work.Combine("cache"),
            ["--upstream", $"docker.io={fixture.Upstream.BaseUri}"], TimeSpan.FromMinutes(2));
        var image = fixture.DockerImage;
        (await Skopeo.CopyAsync($"docker://{mirror.BaseUri.Authority}/docker.io/{image.Repository}:{image.Tag}", $"oci:{_work.Combine("pulled")}:x", all: true,
            new SkopeoCopyOptions { Timeout = TimeSpan.FromMinutes(3) })).EnsureSuccess();

        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await File.ReadAllBytesAsync(_work.Combine("pulled", "blobs", "sha256", blob.Hex)));
        }
    }
}
