using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>A private CA and the server certificates it issues, written as PEM files like cert-manager's.</summary>
internal sealed class TestCertificateAuthority : IDisposable
{
    private readonly X509Certificate2 _ca;
    private readonly ECDsa _caKey;

    public TestCertificateAuthority(string name, string directory)
    {
        _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        CertificateFile = Path.Combine(directory, $"{Slug(name)}-ca.crt");
        File.WriteAllText(CertificateFile, _ca.ExportCertificatePem() + "\n");
        Directory = directory;
    }

    public string Directory { get; }

    /// <summary>The CA certificate (PEM), as a client's trust anchor.</summary>
    public string CertificateFile { get; }

    /// <summary>Issues a certificate for 127.0.0.1 and localhost; writes <c>name.crt</c> (leaf then CA) and <c>name.key</c>.</summary>
    public (string CertificateFile, string KeyFile, string Thumbprint) IssueServer(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        var serial = RandomNumberGenerator.GetBytes(12);
        using var leaf = request.Create(_ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7), serial);
        var certificateFile = Path.Combine(Directory, $"{name}.crt");
        var keyFile = Path.Combine(Directory, $"{name}.key");
        File.WriteAllText(certificateFile, leaf.ExportCertificatePem() + "\n" + _ca.ExportCertificatePem() + "\n");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        return (certificateFile, keyFile, leaf.Thumbprint);
    }

    private static string Slug(string name) => new(name.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray());

    public void Dispose()
    {
        _ca.Dispose();
        _caKey.Dispose();
    }
}
