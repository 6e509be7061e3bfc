using MirrorProxy.Storage.S3;

namespace MirrorProxy.Tests.Storage;

public sealed class S3SignerTests
{
    [Fact]
    public void Sign_TheGetObjectExampleOfTheS3Documentation_GivesItsPublishedSignature()
    {
        // "Example: GET Object" of Amazon S3's Signature Version 4 documentation.
        var signer = new S3Signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1");
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://examplebucket.s3.amazonaws.com/test.txt");
        request.Headers.TryAddWithoutValidation("Range", "bytes=0-9");

        signer.Sign(request, S3Signer.EmptyPayloadHash, new DateTimeOffset(2013, 5, 24, 0, 0, 0, TimeSpan.Zero));

        Assert.Equal(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            request.Headers.GetValues("Authorization").Single());
        Assert.Equal("20130524T000000Z", request.Headers.GetValues("x-amz-date").Single());
    }

    [Theory]
    [InlineData("blobs/sha256/ab", "blobs/sha256/ab")]
    [InlineData("meta/tags/docker.io/library/nginx/_tags/1.27", "meta/tags/docker.io/library/nginx/_tags/1.27")]
    [InlineData("a b+c~d", "a%20b%2Bc~d")]
    [InlineData("é", "%C3%A9")]
    public void EncodePath_KeepsUnreservedAndSlashes_EncodesTheRest(string key, string expected) =>
        Assert.Equal(expected, S3Signer.EncodePath(key));

    [Fact]
    public void EncodeQueryValue_EncodesSlashes() => Assert.Equal("meta%2Fpins%2F", S3Signer.EncodeQueryValue("meta/pins/"));
}
