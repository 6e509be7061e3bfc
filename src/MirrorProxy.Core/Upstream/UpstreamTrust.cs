using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace MirrorProxy.Upstream;

/// <summary>
/// TLS towards one upstream: the system trust store, plus (or instead of) a CA bundle of its own, an optional
/// client certificate, or, when explicitly asked, no verification at all. Host name checks always apply unless
/// verification is off.
/// </summary>
internal static class UpstreamTrust
{
    public static SslClientAuthenticationOptions CreateSslOptions(UpstreamOptions options)
    {
        var ssl = new SslClientAuthenticationOptions();
        if (options.ClientCertificateFile is { } certificate && options.ClientKeyFile is { } key)
        {
            ssl.ClientCertificates = [X509Certificate2.CreateFromPemFile(certificate, key)];
        }

        if (options.InsecureSkipVerify)
        {
            ssl.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
            return ssl;
        }

        if (options.CaFile is null && options.TrustSystemRoots)
        {
            return ssl; // the platform's default validation
        }

        var roots = new X509Certificate2Collection();
        if (options.CaFile is { } caFile)
        {
            roots.ImportFromPemFile(caFile);
        }

        var trustSystem = options.TrustSystemRoots;
        ssl.RemoteCertificateValidationCallback = (_, presented, chain, errors) =>
            Validate(presented as X509Certificate2 ?? (presented is null ? null : X509CertificateLoader.LoadCertificate(presented.GetRawCertData())), chain, errors, roots, trustSystem);
        return ssl;
    }

    internal static bool Validate(X509Certificate2? presented, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection roots, bool trustSystem)
    {
        if (presented is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false; // no certificate, or the name does not match
        }

        if (errors == SslPolicyErrors.None && trustSystem)
        {
            return true;
        }

        if (roots.Count == 0)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(roots);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return custom.Build(presented);
    }
}
