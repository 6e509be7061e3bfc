using System.CommandLine;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary><c>mirrorproxy check</c> against a running mirror whose cache is filled by real pulls.</summary>
[Collection(PullThroughCollection.Name)]
public sealed class ImageCheckTests(PullThroughFixture fixture) : IAsyncLifetime
{
    private readonly TempDirectory _work = new("check");
    private MirrorServer _mirror = null!;

    public async Task InitializeAsync() => _mirror = await fixture.StartMirrorAsync(_work.Combine("cache"));

    public async Task DisposeAsync()
    {
        await _mirror.DisposeAsync();
        _work.Dispose();
    }

    private async Task<(int ExitCode, string Output)> CheckAsync(string images, string platform)
    {
        var file = _work.Combine(Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(file, images);
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create()
            .Parse(["check", "--server", _mirror.BaseUri.ToString(), "--images", file, "--platform", platform])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output + error.ToString());
    }

    [Fact]
    public async Task Check_KubectlOutput_ReportsAMissingLayer_UntilItIsPulledAgain()
    {
        var image = fixture.MultiArch;
        (await Skopeo.CopyAsync($"docker://{_mirror.HostPort}/docker.io/{image.Repository}:{image.Tag}", $"oci:{_work.Combine("fill")}:x", all: true)).EnsureSuccess();

        // As `kubectl get pods -A -o jsonpath='{..image}'` prints it: spec and status images, duplicates, an image ID.
        var kubectl = $"docker.io/{image.Repository}:{image.Tag} {image.Repository}:{image.Tag} docker.io/{image.Repository}:{image.Tag} sha256:{new string('a', 64)}  {image.Repository}@{image.Digest}\n";

        var (exit, output) = await CheckAsync(kubectl, "all");
        Assert.True(exit == 0, output);
        Assert.Contains($"OK docker.io/{image.Repository}:{image.Tag}", output, StringComparison.Ordinal);
        Assert.Contains("3 images checked for all: 3 complete, 0 missing, 0 invalid, 0 not mirrored (1 bare image IDs skipped)", output, StringComparison.Ordinal);

        var arm64Layer = image.GetManifest(OciPlatform.LinuxArm64).Layers.First(l => image.GetManifest(OciPlatform.LinuxAmd64).Layers.All(a => a.Digest != l.Digest));
        File.Delete(Path.Combine(_mirror.CacheDirectory, "blobs", "sha256", arm64Layer.Hex[..2], arm64Layer.Hex));

        (exit, output) = await CheckAsync(kubectl, "linux/arm64");
        Assert.Equal(1, exit);
        Assert.Contains($"MISSING: docker.io/{image.Repository}:{image.Tag}: layer {arm64Layer.Digest} of linux/arm64/v8", output, StringComparison.Ordinal);

        (exit, output) = await CheckAsync(kubectl, "linux/amd64");
        Assert.True(exit == 0, output);

        Assert.Equal(arm64Layer.Content, await _mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{arm64Layer.Digest}?ns=docker.io"));
        (exit, output) = await CheckAsync(kubectl, "linux/arm64");
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task Check_UncachedAndUnparseableImages_AreReportedAndTheOthersStillChecked()
    {
        var image = fixture.DockerImage;
        Assert.Equal(image.ManifestBytes, await _mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/manifests/{image.Tag}?ns=docker.io"));
        foreach (var blob in image.Blobs)
        {
            Assert.Equal(blob.Content, await _mirror.Client.GetByteArrayAsync($"/v2/{image.Repository}/blobs/{blob.Digest}?ns=docker.io"));
        }

        var (exit, output) = await CheckAsync($"busybox:{image.Tag} docker.io/never/pulled:1 Bad/Name:x quay.io/unconfigured/app:1", "linux/amd64");

        Assert.Equal(1, exit);
        Assert.Contains($"OK busybox:{image.Tag}", output, StringComparison.Ordinal);
        Assert.Contains("MISSING: docker.io/never/pulled:1: tag 1 is not cached", output, StringComparison.Ordinal);
        Assert.Contains("INVALID: Bad/Name:x:", output, StringComparison.Ordinal);
        Assert.Contains("NOT MIRRORED: quay.io/unconfigured/app:1: no upstream is configured for registry quay.io", output, StringComparison.Ordinal);
        Assert.Contains("4 images checked for linux/amd64: 1 complete, 1 missing, 1 invalid, 1 not mirrored", output, StringComparison.Ordinal);
    }
}
