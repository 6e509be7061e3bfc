using MirrorProxy.Readiness;

namespace MirrorProxy.Tests.Readiness;

public sealed class ImageListTests
{
    [Fact]
    public void Parse_KubectlJsonpathOutput_DedupesAndSkipsImageIds()
    {
        // kubectl get pods -A -o jsonpath='{..image}': spec images, then status images (normalised, or an ID).
        const string output = "nginx:1.25 registry.k8s.io/pause:3.9 docker.io/library/nginx:1.25 nginx:1.25 "
            + "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef registry.k8s.io/pause:3.9\n";

        var (images, skipped) = ImageList.Parse(output);

        Assert.Equal(["nginx:1.25", "registry.k8s.io/pause:3.9", "docker.io/library/nginx:1.25"], images);
        Assert.Equal(1, skipped);
    }

    [Fact]
    public void Parse_OnePerLineWithCommentsAndBlankLines()
    {
        var (images, skipped) = ImageList.Parse("# cluster images\nalpine:3.20\n\n\tghcr.io/org/app:1\r\n# end\n");

        Assert.Equal(["alpine:3.20", "ghcr.io/org/app:1"], images);
        Assert.Equal(0, skipped);
    }
}
