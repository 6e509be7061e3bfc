using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Bundles;

namespace MirrorProxy.Tests.Bundles;

public sealed class BundleSigningTests
{
    private static readonly byte[] Content = Encoding.UTF8.GetBytes("""{"formatVersion":1}""");

    [Fact]
    public void Sign_WritesBase64DerThatVerifiesWithThePublicKey_AndNotWithAnother()
    {
        var (privatePem, publicPem) = BundleSigning.GenerateKeyPair();
        var (_, otherPublic) = BundleSigning.GenerateKeyPair();
        using var key = BundleSigning.LoadPrivateKey(privatePem, out _)!;
        using var trusted = BundleSigning.LoadPublicKey(publicPem, out _)!;
        using var other = BundleSigning.LoadPublicKey(otherPublic, out _)!;

        var signature = BundleSigning.Sign(key, Content);
        var der = Convert.FromBase64String(Encoding.ASCII.GetString(signature));
        Assert.Equal(0x30, der[0]); // an ASN.1 SEQUENCE, not the 64-byte r||s that openssl and cosign reject

        Assert.Same(trusted, BundleSigning.Verify(Content, signature, [other, trusted]));
        Assert.Null(BundleSigning.Verify(Content, signature, [other]));
        Assert.Null(BundleSigning.Verify(Encoding.UTF8.GetBytes("""{"formatVersion":2}"""), signature, [trusted]));
        Assert.Null(BundleSigning.Verify(Content, "not base64!"u8, [trusted]));
    }

    [Fact]
    public void Keys_Sec1AndPkcs8AreRead_OtherCurvesAndPublicKeysAsPrivateAreNot()
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.NotNull(BundleSigning.LoadPrivateKey(ec.ExportECPrivateKeyPem(), out _));
        Assert.NotNull(BundleSigning.LoadPrivateKey(ec.ExportPkcs8PrivateKeyPem(), out _));
        using var trusted = BundleSigning.LoadPublicKey(ec.ExportSubjectPublicKeyInfoPem(), out _);
        Assert.NotNull(trusted);
        Assert.Equal(16, trusted!.Id.Length);

        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.Null(BundleSigning.LoadPrivateKey(p384.ExportPkcs8PrivateKeyPem(), out var error));
        Assert.Contains("P-256", error, StringComparison.Ordinal);
        Assert.Null(BundleSigning.LoadPublicKey(ec.ExportPkcs8PrivateKeyPem(), out error));
        Assert.Contains("private key", error, StringComparison.Ordinal);
        Assert.Null(BundleSigning.LoadPrivateKey(ec.ExportSubjectPublicKeyInfoPem(), out _));
        Assert.Null(BundleSigning.LoadPrivateKey("not a key", out _));

        using var fromHeader = BundleSigning.FromSubjectPublicKeyInfo(Convert.ToBase64String(ec.ExportSubjectPublicKeyInfo()));
        Assert.Equal(trusted.Id, fromHeader!.Id);
        Assert.Null(BundleSigning.FromSubjectPublicKeyInfo("%%%"));
    }
}
