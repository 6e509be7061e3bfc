using System.Text;
using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class ManifestMediaTypeTests
{
    private const string OciManifestWithField =
        """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":1},"layers":[]}""";

    private const string DockerManifestWithField =
        """{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[]}""";

    [Fact]
    public void Resolve_SpecificContentType_WinsOverTheBody()
    {
        var result = ManifestMediaType.Resolve(MediaTypes.DockerManifest, Bytes(OciManifestWithField));

        Assert.Equal(MediaTypes.DockerManifest, result);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("application/json")]
    [InlineData("text/plain")]
    [InlineData("application/octet-stream")]
    public void Resolve_GenericOrMissingContentType_UsesTheMediaTypeField(string? contentType)
    {
        var result = ManifestMediaType.Resolve(contentType, Bytes(DockerManifestWithField));

        Assert.Equal(MediaTypes.DockerManifest, result);
    }

    [Fact]
    public void Resolve_MediaTypeFieldAfterNestedObjects_IgnoresNestedMediaTypes()
    {
        const string manifest =
            """{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"x/y"}],"mediaType":"application/vnd.oci.image.manifest.v1+json"}""";

        Assert.Equal(MediaTypes.OciManifest, ManifestMediaType.Resolve(null, Bytes(manifest)));
    }

    [Fact]
    public void Resolve_ImageShapeWithoutMediaType_IsOciManifest()
    {
        const string manifest = """{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[]}""";

        Assert.Equal(MediaTypes.OciManifest, ManifestMediaType.Resolve(MediaTypes.Json, Bytes(manifest)));
    }

    [Fact]
    public void Resolve_IndexShapeWithoutMediaType_IsOciIndex()
    {
        const string index = """{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1}]}""";

        Assert.Equal(MediaTypes.OciIndex, ManifestMediaType.Resolve(null, Bytes(index)));
    }

    [Fact]
    public void Resolve_SignedSchema1_IsPrettyJws()
    {
        const string manifest =
            """{"schemaVersion":1,"name":"library/busybox","tag":"latest","architecture":"amd64","fsLayers":[{"blobSum":"sha256:aa"}],"history":[],"signatures":[{"header":{"alg":"ES256"},"signature":"x","protected":"y"}]}""";

        Assert.Equal(MediaTypes.DockerSchema1Signed, ManifestMediaType.Resolve(MediaTypes.Json, Bytes(manifest)));
    }

    [Fact]
    public void Resolve_UnsignedSchema1_IsSchema1()
    {
        const string manifest = """{"schemaVersion":1,"name":"library/busybox","tag":"latest","fsLayers":[],"history":[]}""";

        Assert.Equal(MediaTypes.DockerSchema1, ManifestMediaType.Resolve(null, Bytes(manifest)));
    }

    [Theory]
    [InlineData(null, "not json at all", MediaTypes.OctetStream)]
    [InlineData("application/json", "not json at all", "application/json")]
    [InlineData(null, "[1,2,3]", MediaTypes.OctetStream)]
    [InlineData("text/plain", "\"a string\"", "text/plain")]
    [InlineData(null, "{\"schemaVersion\":2,", MediaTypes.OctetStream)]
    public void Resolve_BodyThatIsNotAManifestObject_FallsBackToContentType(string? contentType, string body, string expected)
    {
        Assert.Equal(expected, ManifestMediaType.Resolve(contentType, Bytes(body)));
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [Theory]
    [InlineData("""{"schemaVersion":2,"mediaType":null,"config":{},"layers":[]}""")]
    [InlineData("""{"schemaVersion":2.0,"config":{},"layers":[]}""")]
    [InlineData("""{"schemaVersion":99999999999,"config":{},"layers":[]}""")]
    [InlineData("""{"mediaType":{"x":1},"schemaVersion":2,"config":{},"layers":[]}""")]
    public void Resolve_UnusualButValidJson_FallsBackToImageManifest(string body)
    {
        Assert.Equal(MediaTypes.OciManifest, ManifestMediaType.Resolve(null, System.Text.Encoding.UTF8.GetBytes(body)));
    }
}
