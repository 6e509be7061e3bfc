using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MirrorProxy.Cli;

/// <summary>
/// How the client commands trust the mirror's certificate: the system's trust store (which <c>SSL_CERT_FILE</c>
/// replaces), plus the CA certificates of <c>--ca FILE</c>. Remembers why the last certificate was refused, so
/// that the error says so instead of "see inner exception".
/// </summary>
internal sealed class MirrorTrust : IDisposable
{
    public const string Hint = "trust the mirror's CA with --ca FILE (a PEM file, e.g. the ca.crt of the Secret mirrorproxy-tls) or SSL_CERT_FILE=FILE";

    private readonly X509Certificate2Collection _authorities = [];
    private string? _refusal;

    private MirrorTrust(string? caFile) => CaFile = caFile;

    public string? CaFile { get; }

    /// <summary>Loads <paramref name="caFile"/> (PEM, one or more certificates), or null with the reason.</summary>
    public static MirrorTrust? TryCreate(string? caFile, out string? error)
    {
        error = null;
        var trust = new MirrorTrust(caFile);
        if (caFile is null)
        {
            return trust;
        }

        try
        {
            trust._authorities.ImportFromPemFile(caFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            error = $"--ca: cannot read '{caFile}': {ex.Message}";
            trust.Dispose();
            return null;
        }

        if (trust._authorities.Count == 0)
        {
            error = $"--ca: '{caFile}' holds no PEM certificate";
            trust.Dispose();
            return null;
        }

        return trust;
    }

    public SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = Validate },
    };

    /// <summary>
    /// The error of a failed request in one line: every message of the exception chain (the TLS reason
    /// included), and for a certificate problem how to trust the mirror.
    /// </summary>
    public string Describe(Exception exception)
    {
        var messages = new List<string>();
        var tls = false;
        for (var current = exception; current is not null; current = current.InnerException)
        {
            tls |= current is AuthenticationException;
            var message = current.Message.Replace(", see inner exception.", "", StringComparison.Ordinal).Replace(" See inner exception.", "", StringComparison.Ordinal).TrimEnd('.');
            // The callback's own refusal says nothing the recorded reason does not.
            if (message.Length > 0 && !message.Contains("RemoteCertificateValidationCallback", StringComparison.Ordinal)
                && !messages.Any(m => m.Contains(message, StringComparison.Ordinal)))
            {
                messages.Add(message);
            }
        }

        if (tls && Volatile.Read(ref _refusal) is { } refusal)
        {
            messages.Add(refusal);
        }

        var text = string.Join(": ", messages);
        return tls ? $"{text}. Hint: {Hint}" : text;
    }

    private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        // Only the chain may be rescued by --ca: a certificate for another host stays refused.
        if (errors == SslPolicyErrors.RemoteCertificateChainErrors && _authorities.Count > 0 && certificate is not null && chain is not null)
        {
            if (ChainsToGivenAuthority(certificate, chain, out var status))
            {
                return true;
            }

            Volatile.Write(ref _refusal, $"the certificate does not chain to a CA of {CaFile} ({status})");
            return false;
        }

        var reasons = new List<string>();
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            reasons.Add("the certificate does not name the host in --server");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            reasons.Add("the server sent no certificate");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            var statuses = chain?.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct() ?? [];
            reasons.Add($"the certificate is not trusted ({string.Join("; ", statuses)})");
        }

        Volatile.Write(ref _refusal, string.Join("; ", reasons));
        return false;
    }

    private bool ChainsToGivenAuthority(X509Certificate certificate, X509Chain presented, out string status)
    {
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authorities);
        foreach (var element in presented.ChainElements)
        {
            chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        }

        var built = chain.Build(leaf);
        status = built ? "ok" : string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct());
        return built;
    }

    public void Dispose()
    {
        foreach (var authority in _authorities)
        {
            authority.Dispose();
        }
    }
}
