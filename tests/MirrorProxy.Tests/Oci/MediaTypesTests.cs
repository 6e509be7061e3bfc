using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class MediaTypesTests
{
    [Fact]
    public void IsAccepted_NoAcceptHeader_AdmitsEverything()
    {
        Assert.True(MediaTypes.IsAccepted(MediaTypes.OciManifest, []));
        Assert.True(MediaTypes.IsAccepted(MediaTypes.OciManifest, [null]));
        Assert.True(MediaTypes.IsAccepted(MediaTypes.OciManifest, [""]));
        Assert.True(MediaTypes.IsAccepted(MediaTypes.OciManifest, [" , "]));
    }

    [Theory]
    [InlineData(MediaTypes.OciManifest, MediaTypes.OciManifest)]
    [InlineData(MediaTypes.OciManifest, "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON")]
    [InlineData(MediaTypes.OciManifest, "*/*")]
    [InlineData(MediaTypes.OciManifest, "application/*")]
    [InlineData(MediaTypes.OciIndex, "application/vnd.docker.distribution.manifest.v2+json; q=0.9 ,  application/vnd.oci.image.index.v1+json")]
    [InlineData(MediaTypes.DockerManifest, "application/vnd.docker.distribution.manifest.v2+json;q=0.5")]
    [InlineData(MediaTypes.DockerSchema1Signed, MediaTypes.ManifestAccept)]
    [InlineData(MediaTypes.OciArtifactManifest, MediaTypes.ManifestAccept)]
    public void IsAccepted_HeaderNamesTheTypeOrAWildcard_IsTrue(string mediaType, string accept)
    {
        Assert.True(MediaTypes.IsAccepted(mediaType, [accept]));
    }

    [Theory]
    [InlineData(MediaTypes.OciManifest, MediaTypes.DockerManifest)]
    [InlineData(MediaTypes.OciIndex, "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")]
    [InlineData(MediaTypes.OciManifest, "text/*")]
    [InlineData(MediaTypes.OciManifest, "application/vnd.oci.image.manifest.v1")]
    public void IsAccepted_HeaderExcludesTheType_IsFalse(string mediaType, string accept)
    {
        Assert.False(MediaTypes.IsAccepted(mediaType, [accept]));
    }

    [Fact]
    public void IsAccepted_SeveralHeaderValues_AnyOfThemAdmits()
    {
        Assert.True(MediaTypes.IsAccepted(MediaTypes.OciIndex, [MediaTypes.DockerManifest, MediaTypes.OciIndex + ";q=0.8"]));
        Assert.False(MediaTypes.IsAccepted(MediaTypes.OciIndex, [MediaTypes.DockerManifest, MediaTypes.OciManifest]));
    }

    [Fact]
    public void IsAccepted_UnknownMediaType_OnlyFullWildcardAdmits()
    {
        Assert.True(MediaTypes.IsAccepted(null, ["*/*"]));
        Assert.False(MediaTypes.IsAccepted(null, ["application/*"]));
        Assert.False(MediaTypes.IsAccepted(null, [MediaTypes.OciManifest]));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("   ", null)]
    [InlineData("application/json", "application/json")]
    [InlineData("application/json; charset=utf-8", "application/json")]
    [InlineData("  application/vnd.oci.image.index.v1+json  ", "application/vnd.oci.image.index.v1+json")]
    [InlineData("application/vnd.oci.image.manifest.v1+json ;a=b;c=d", "application/vnd.oci.image.manifest.v1+json")]
    public void StripParameters_ContentType_KeepsOnlyTheMediaType(string? contentType, string? expected)
    {
        Assert.Equal(expected, MediaTypes.StripParameters(contentType));
    }

    [Fact]
    public void StripParameters_NothingToStrip_ReturnsTheSameInstance()
    {
        var contentType = MediaTypes.OciManifest;

        Assert.Same(contentType, MediaTypes.StripParameters(contentType));
    }

    [Theory]
    [InlineData(MediaTypes.OciIndex, true)]
    [InlineData(MediaTypes.DockerManifestList, true)]
    [InlineData(MediaTypes.OciManifest, false)]
    [InlineData(null, false)]
    public void IsIndex_MediaType_RecognisesBothIndexTypes(string? mediaType, bool expected)
    {
        Assert.Equal(expected, MediaTypes.IsIndex(mediaType));
    }

    [Fact]
    public void IsAccepted_TypeListedWithQZero_IsNotAccepted()
    {
        Assert.False(MediaTypes.IsAccepted(MediaTypes.OciManifest, [MediaTypes.OciManifest + ";q=0, " + MediaTypes.DockerManifest]));
        Assert.True(MediaTypes.IsAccepted(MediaTypes.DockerManifest, [MediaTypes.OciManifest + ";q=0, " + MediaTypes.DockerManifest + ";q=0.5"]));
    }
}
