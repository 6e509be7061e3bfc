using MirrorProxy.IntegrationTests.Infrastructure.Engines;

namespace MirrorProxy.IntegrationTests.Engines;

public sealed class AwsSigV4Tests
{
    /// <summary>The GET-object example of the S3 SigV4 documentation: its published signature.</summary>
    [Fact]
    public void Authorization_DocumentedGetObjectExample_MatchesPublishedSignature()
    {
        var authorization = AwsSigV4.Authorization(
            "GET",
            "/test.txt",
            [],
            [
                new("Host", "examplebucket.s3.amazonaws.com"),
                new("Range", "bytes=0-9"),
                new("x-amz-content-sha256", AwsSigV4.EmptyPayloadHash),
                new("x-amz-date", "20130524T000000Z"),
            ],
            AwsSigV4.EmptyPayloadHash,
            new DateTimeOffset(2013, 5, 24, 0, 0, 0, TimeSpan.Zero),
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1");

        Assert.Equal(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            authorization);
    }

    [Theory]
    [InlineData("a b+c/d~e", false, "a%20b%2Bc/d~e")]
    [InlineData("a/b", true, "a%2Fb")]
    [InlineData("é", false, "%C3%A9")]
    public void UriEncode_EncodesAllButUnreserved(string value, bool encodeSlash, string expected)
        => Assert.Equal(expected, AwsSigV4.UriEncode(value, encodeSlash));
}
