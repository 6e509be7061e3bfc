using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class ImageReferenceTests
{
    private const string Hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("nginx", "docker.io/library/nginx:latest")]
    [InlineData("nginx:1.25", "docker.io/library/nginx:1.25")]
    [InlineData("nginx:1.25@sha256:" + Hex, "docker.io/library/nginx@sha256:" + Hex)]
    [InlineData("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2")]
    [InlineData("docker.io/nginx", "docker.io/library/nginx:latest")]
    [InlineData("index.docker.io/library/nginx", "docker.io/library/nginx:latest")]
    [InlineData("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9")]
    [InlineData("ghcr.io/org/app@sha256:" + Hex, "ghcr.io/org/app@sha256:" + Hex)]
    [InlineData("quay.io/prometheus/node-exporter:v1.8.0", "quay.io/prometheus/node-exporter:v1.8.0")]
    [InlineData("localhost:5000/foo", "localhost:5000/foo:latest")]
    [InlineData("localhost/foo", "localhost/foo:latest")]
    [InlineData("myreg:5000/foo", "myreg:5000/foo:latest")]
    [InlineData("harbor.corp/proj/app:1", "harbor.corp/proj/app:1")]
    [InlineData("[::1]:5000/app:2", "[::1]:5000/app:2")]
    public void TryParse_NormalisesLikeContainerd(string text, string expected)
    {
        Assert.True(ImageReference.TryParse(text, out var reference, out var error), error);
        Assert.Equal(expected, reference!.ToString());
    }

    [Theory]
    [InlineData("sha256:" + Hex)]
    [InlineData(Hex)]
    [InlineData("")]
    [InlineData("Nginx")]
    [InlineData("library/Nginx:1")]
    [InlineData("nginx:-bad")]
    [InlineData("nginx@sha256:abc")]
    [InlineData("nginx@md5:0123")]
    [InlineData("docker.io/a//b")]
    public void TryParse_Rejects(string text)
    {
        Assert.False(ImageReference.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Theory]
    [InlineData("sha256:" + Hex, true)]
    [InlineData(Hex, true)]
    [InlineData("sha256:" + "0123", false)]
    [InlineData("nginx", false)]
    public void IsImageId(string text, bool expected) => Assert.Equal(expected, ImageReference.IsImageId(text));
}
