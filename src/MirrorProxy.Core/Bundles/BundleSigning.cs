using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.Bundles;

/// <summary>A public key an island trusts, with a short id (the start of the sha256 of its SubjectPublicKeyInfo).</summary>
internal sealed class TrustedKey : IDisposable
{
    public TrustedKey(ECDsa key)
    {
        Key = key;
        SubjectPublicKeyInfo = key.ExportSubjectPublicKeyInfo();
        Id = Convert.ToHexStringLower(SHA256.HashData(SubjectPublicKeyInfo))[..16];
    }

    public ECDsa Key { get; }

    public byte[] SubjectPublicKeyInfo { get; }

    public string Id { get; }

    public void Dispose() => Key.Dispose();
}

/// <summary>
/// Bundle signatures as <c>cosign sign-blob</c> writes them: base64 of an ASN.1 DER ECDSA P-256 signature over the
/// SHA-256 of the exact bytes of <c>mirrorproxy-bundle.json</c>. They verify with
/// <c>openssl dgst -sha256 -verify key.pub -signature &lt;(base64 -d …sig) mirrorproxy-bundle.json</c>. Keys are
/// ordinary PEM files as openssl writes them (PKCS#8 or SEC1 private keys, SubjectPublicKeyInfo public keys).
/// </summary>
internal static class BundleSigning
{
    /// <summary>Loads a P-256 private key from PEM; null with the reason when it is not one.</summary>
    public static ECDsa? LoadPrivateKey(string pem, out string error) =>
        ImportP256(pem, requirePrivate: true, "not an unencrypted EC private key in PEM (PKCS#8 'PRIVATE KEY' or SEC1 'EC PRIVATE KEY'): ", out error);

    /// <summary>Loads a P-256 public key from PEM (a <c>PUBLIC KEY</c> block); null with the reason when it is not one.</summary>
    public static TrustedKey? LoadPublicKey(string pem, out string error)
    {
        if (pem.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            error = "this is a private key; give the public key (.pub) to the side that verifies";
            return null;
        }

        return ImportP256(pem, requirePrivate: false, "not an EC public key in PEM ('PUBLIC KEY'): ", out error) is { } key ? new TrustedKey(key) : null;
    }

    private static ECDsa? ImportP256(string pem, bool requirePrivate, string notAKey, out string error)
    {
        error = "";
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (!IsP256(key))
            {
                error = "the key is not on the P-256 curve (prime256v1)";
                key.Dispose();
                return null;
            }

            if (requirePrivate)
            {
                // A public key imports too, but cannot sign: exporting its private part throws.
                key.ExportParameters(includePrivateParameters: true);
            }

            return key;
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException)
        {
            error = notAKey + ex.Message;
            key.Dispose();
            return null;
        }
    }

    /// <summary>A trusted key from the base64 SubjectPublicKeyInfo a client sends; null when it is not a P-256 key.</summary>
    public static TrustedKey? FromSubjectPublicKeyInfo(string base64)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportSubjectPublicKeyInfo(Convert.FromBase64String(base64), out _);
            if (IsP256(key))
            {
                return new TrustedKey(key);
            }
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException)
        {
        }

        key.Dispose();
        return null;
    }

    /// <summary>The signature file's content: base64 of the DER signature, no line break (as cosign writes it).</summary>
    public static byte[] Sign(ECDsa key, ReadOnlySpan<byte> content) =>
        Encoding.ASCII.GetBytes(Convert.ToBase64String(key.SignData(content, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)));

    /// <summary>The key among <paramref name="keys"/> whose signature <paramref name="signatureFile"/> is; null when none.</summary>
    public static TrustedKey? Verify(ReadOnlySpan<byte> content, ReadOnlySpan<byte> signatureFile, IReadOnlyList<TrustedKey> keys)
    {
        byte[] signature;
        try
        {
            signature = Convert.FromBase64String(Encoding.ASCII.GetString(signatureFile).Trim());
        }
        catch (FormatException)
        {
            return null;
        }

        foreach (var key in keys)
        {
            if (key.Key.VerifyData(content, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence))
            {
                return key;
            }
        }

        return null;
    }

    /// <summary>A new P-256 key pair as PEM: the private key in PKCS#8, the public key as SubjectPublicKeyInfo.</summary>
    public static (string PrivatePem, string PublicPem) GenerateKeyPair()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return (key.ExportPkcs8PrivateKeyPem() + "\n", key.ExportSubjectPublicKeyInfoPem() + "\n");
    }

    private static bool IsP256(ECDsa key)
    {
        var curve = key.ExportParameters(includePrivateParameters: false).Curve;
        return curve.IsNamed && (curve.Oid.Value == "1.2.840.10045.3.1.7" || curve.Oid.FriendlyName is "nistP256" or "ECDSA_P256" or "prime256v1");
    }
}
