using MirrorProxy.Protocol;

namespace MirrorProxy.Tests.Protocol;

public sealed class RegistryPathTests
{
    [Theory]
    [InlineData("", RegistryRequestKind.Base, "", "")]
    [InlineData("/", RegistryRequestKind.Base, "", "")]
    [InlineData("/_catalog", RegistryRequestKind.Catalog, "", "")]
    [InlineData("/_catalog/", RegistryRequestKind.Catalog, "", "")]
    [InlineData("/nginx/manifests/latest", RegistryRequestKind.Manifest, "nginx", "latest")]
    [InlineData("/library/nginx/manifests/1.27", RegistryRequestKind.Manifest, "library/nginx", "1.27")]
    [InlineData("/a/b/c/d/manifests/sha256:abc", RegistryRequestKind.Manifest, "a/b/c/d", "sha256:abc")]
    [InlineData("/a/manifests/b/manifests/latest", RegistryRequestKind.Manifest, "a/manifests/b", "latest")]
    [InlineData("/library/nginx/blobs/sha256:abc", RegistryRequestKind.Blob, "library/nginx", "sha256:abc")]
    [InlineData("/a/blobs/b/blobs/sha256:abc", RegistryRequestKind.Blob, "a/blobs/b", "sha256:abc")]
    [InlineData("/library/nginx/tags/list", RegistryRequestKind.TagsList, "library/nginx", "")]
    [InlineData("/ghcr.io/org/app/tags/list", RegistryRequestKind.TagsList, "ghcr.io/org/app", "")]
    [InlineData("/org/app/referrers/sha256:abc", RegistryRequestKind.Referrers, "org/app", "sha256:abc")]
    [InlineData("/x/blobs/uploads/", RegistryRequestKind.Upload, "x", "")]
    [InlineData("/x/blobs/uploads/uuid", RegistryRequestKind.Upload, "x", "uuid")]
    [InlineData("/x/y/blobs/uploads", RegistryRequestKind.Upload, "x/y", "")]
    public void Parse_EndpointPath_YieldsKindNameAndReference(string path, object kind, string name, string reference)
    {
        var parsed = RegistryPath.Parse(path);

        Assert.Equal(new RegistryPath((RegistryRequestKind)kind, name, reference), parsed);
    }

    [Theory]
    [InlineData("library/nginx/manifests/latest")]
    [InlineData("/nginx")]
    [InlineData("/manifests/latest")]
    [InlineData("/library/nginx/manifests/")]
    [InlineData("/library/nginx/blobs/")]
    [InlineData("/library/nginx/tags/other")]
    [InlineData("/library/nginx/tags/")]
    [InlineData("/library/nginx/foo/bar")]
    [InlineData("/library/nginx")]
    [InlineData("/_catalog/x")]
    public void Parse_PathNamingNoEndpoint_IsUnknown(string path)
    {
        var parsed = RegistryPath.Parse(path);

        Assert.Equal(RegistryRequestKind.Unknown, parsed.Kind);
        Assert.Equal("", parsed.Name);
        Assert.Equal("", parsed.Reference);
    }
}
