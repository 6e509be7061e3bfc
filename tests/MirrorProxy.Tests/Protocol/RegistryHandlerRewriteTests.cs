using MirrorProxy.Protocol;

namespace MirrorProxy.Tests.Protocol;

public sealed class RegistryHandlerRewriteTests
{
    [Fact]
    public void RewriteLink_UpstreamTagsLink_PointsAtClientNameWithNs()
    {
        var link = RegistryHandler.RewriteLink("</v2/proxy/library/nginx/tags/list?last=b&n=2>; rel=\"next\"", "library/nginx", "docker.io");

        Assert.Equal("</v2/library/nginx/tags/list?last=b&n=2&ns=docker.io>; rel=\"next\"", link);
    }

    [Fact]
    public void RewriteLink_LinkAlreadyCarriesNs_NsAppearsOnce()
    {
        var link = RegistryHandler.RewriteLink("</v2/library/nginx/tags/list?ns=docker.io&n=2&last=b>; rel=\"next\"", "nginx", "docker.io");

        Assert.Equal("</v2/nginx/tags/list?n=2&last=b&ns=docker.io>; rel=\"next\"", link);
    }

    [Fact]
    public void RewriteLink_UpstreamNsButClientRoutedByPrefix_DropsNs()
    {
        var link = RegistryHandler.RewriteLink("</v2/dockerhub-proxy/library/nginx/tags/list?n=2&ns=other&last=b>; rel=\"next\"", "docker.io/library/nginx", null);

        Assert.Equal("</v2/docker.io/library/nginx/tags/list?n=2&last=b>; rel=\"next\"", link);
    }

    [Fact]
    public void RewriteLink_AbsoluteUpstreamUrl_BecomesMirrorRelative()
    {
        var link = RegistryHandler.RewriteLink("<https://registry-1.docker.io/v2/library/nginx/tags/list?last=1.27&n=100>; rel=\"next\"", "nginx", "docker.io");

        Assert.Equal("</v2/nginx/tags/list?last=1.27&n=100&ns=docker.io>; rel=\"next\"", link);
    }

    [Fact]
    public void RewriteLink_ReferrersLink_KeepsTheReferrersPathAndQuery()
    {
        var link = RegistryHandler.RewriteLink(
            "<https://ghcr.io/v2/upstream/org/app/referrers/sha256:abc?artifactType=application%2Fvnd.example&n=1>; rel=\"next\"", "org/app", "ghcr.io");

        Assert.Equal("</v2/org/app/referrers/sha256:abc?artifactType=application%2Fvnd.example&n=1&ns=ghcr.io>; rel=\"next\"", link);
    }

    [Fact]
    public void RewriteLink_NoQueryNoNs_HasNoQuestionMark()
    {
        Assert.Equal("</v2/b/tags/list>; rel=\"next\"", RegistryHandler.RewriteLink("</v2/a/tags/list>; rel=\"next\"", "b", null));
    }

    [Fact]
    public void RewriteLink_NsWithPort_IsEscaped()
    {
        var link = RegistryHandler.RewriteLink("</v2/a/tags/list?n=1>; rel=\"next\"", "a", "harbor.corp:8443");

        Assert.Equal("</v2/a/tags/list?n=1&ns=harbor.corp%3A8443>; rel=\"next\"", link);
    }

    [Theory]
    [InlineData("")]
    [InlineData("rel=\"next\"")]
    [InlineData("/v2/a/tags/list?n=1>; rel=\"next\"")]
    [InlineData("</v2/a/tags/list?n=1; rel=\"next\"")]
    public void RewriteLink_NotALink_IsNull(string header)
    {
        Assert.Null(RegistryHandler.RewriteLink(header, "a", "docker.io"));
    }
}
