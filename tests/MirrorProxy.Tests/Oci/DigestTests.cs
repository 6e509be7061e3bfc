using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Oci;

public sealed class DigestTests
{
    private static readonly string Hex64 = new string('a', 62) + "09";
    private static readonly string Hex128 = new string('0', 120) + "abcdef12";

    [Fact]
    public void Parse_Sha256WithLowerHex_IsOk()
    {
        var text = "sha256:" + Hex64;

        var status = Digest.Parse(text, out var digest);

        Assert.Equal(DigestParseStatus.Ok, status);
        Assert.Equal(text, digest.Value);
        Assert.Equal("sha256", digest.Algorithm.ToString());
        Assert.Equal(Hex64, digest.Encoded.ToString());
        Assert.False(digest.IsSha512);
        Assert.Equal(text, digest.ToString());
    }

    [Fact]
    public void Parse_Sha512WithLowerHex_IsOk()
    {
        var text = "sha512:" + Hex128;

        var status = Digest.Parse(text, out var digest);

        Assert.Equal(DigestParseStatus.Ok, status);
        Assert.True(digest.IsSha512);
        Assert.Equal("sha512", digest.Algorithm.ToString());
        Assert.Equal(Hex128, digest.Encoded.ToString());
    }

    [Theory]
    [InlineData("sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789")]
    [InlineData("sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef012345678F")]
    public void Parse_UppercaseHex_IsInvalid(string text)
    {
        Assert.Equal(DigestParseStatus.Invalid, Digest.Parse(text, out var digest));
        Assert.Equal(default, digest);
        Assert.False(Digest.TryParse(text, out _));
    }

    [Theory]
    [InlineData("sha256", 63)]
    [InlineData("sha256", 65)]
    [InlineData("sha256", 128)]
    [InlineData("sha512", 64)]
    [InlineData("sha512", 127)]
    [InlineData("sha512", 129)]
    public void Parse_WrongEncodedLength_IsInvalid(string algorithm, int length)
    {
        var text = algorithm + ":" + new string('a', length);

        Assert.Equal(DigestParseStatus.Invalid, Digest.Parse(text, out _));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sha256")]
    [InlineData("sha256:")]
    [InlineData(":abcdef")]
    [InlineData("SHA256:abc")]
    [InlineData("sha256+:abc")]
    [InlineData("+sha256:abc")]
    [InlineData("sha..256:abc")]
    [InlineData("sha-_256:abc")]
    [InlineData("sha 256:abc")]
    [InlineData("sha256:abc def")]
    [InlineData("sha256:abc/def")]
    [InlineData("sha256:abc:def")]
    public void Parse_BadGrammar_IsInvalid(string? text)
    {
        Assert.Equal(DigestParseStatus.Invalid, Digest.Parse(text, out _));
    }

    [Fact]
    public void Parse_LongerThan256Characters_IsInvalid()
    {
        var text = "sha256+b64u:" + new string('a', 245);

        Assert.Equal(257, text.Length);
        Assert.Equal(DigestParseStatus.Invalid, Digest.Parse(text, out _));
    }

    [Theory]
    [InlineData("md5:d41d8cd98f00b204e9800998ecf8427e")]
    [InlineData("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564")]
    [InlineData("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")]
    [InlineData("blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")]
    public void Parse_WellFormedOtherAlgorithm_IsUnsupported(string text)
    {
        Assert.Equal(DigestParseStatus.UnsupportedAlgorithm, Digest.Parse(text, out var digest));
        Assert.Equal(default, digest);
        Assert.False(Digest.TryParse(text, out _));
    }

    [Fact]
    public void ComputeSha256_EmptyContent_IsTheWellKnownDigest()
    {
        var digest = Digest.ComputeSha256([]);

        Assert.Equal("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", digest.Value);
    }

    [Fact]
    public void ComputeSha256_ParseAndFromHash_RoundTripToTheSameDigest()
    {
        var content = Encoding.UTF8.GetBytes("hello, registry");

        var computed = Digest.ComputeSha256(content);
        var fromHash = Digest.FromSha256Hash(SHA256.HashData(content));
        Assert.True(Digest.TryParse(computed.Value, out var parsed));

        Assert.Equal(computed, fromHash);
        Assert.Equal(computed, parsed);
        Assert.Equal("sha256", parsed.Algorithm.ToString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), parsed.Encoded.ToString());
    }

    [Fact]
    public void Matches_SameContent_IsTrueAndOtherContentFalse()
    {
        var content = Encoding.UTF8.GetBytes("layer bytes");
        var digest = Digest.ComputeSha256(content);

        Assert.True(digest.Matches(content));
        Assert.False(digest.Matches(Encoding.UTF8.GetBytes("layer bytez")));
        Assert.True(digest.MatchesHash(SHA256.HashData(content)));
    }

    [Fact]
    public void Matches_Sha512Digest_HashesWithSha512()
    {
        var content = Encoding.UTF8.GetBytes("sha512 content");
        Assert.True(Digest.TryParse("sha512:" + Convert.ToHexStringLower(SHA512.HashData(content)), out var digest));

        Assert.True(digest.Matches(content));
        Assert.False(digest.Matches(Encoding.UTF8.GetBytes("other")));
        using var hash = digest.CreateHash();
        hash.AppendData(content);
        Assert.True(digest.MatchesHash(hash.GetHashAndReset()));
    }
}
