using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Hosting;

/// <summary>
/// The server certificate from PEM files (as cert-manager writes them into a Secret: <c>tls.crt</c> with the
/// chain, <c>tls.key</c>). The files are re-read when their bytes change, checked at most once per interval as
/// connections arrive, so a renewed certificate reaches new connections without a restart. A half-written or
/// broken renewal keeps the previous certificate in service.
/// </summary>
internal sealed partial class ServerCertificateProvider
{
    private readonly string _certificateFile;
    private readonly string _keyFile;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private State _state;
    private long _nextCheck;

    private sealed record State(SslStreamCertificateContext Context, byte[] Hash);

    public ServerCertificateProvider(string certificateFile, string keyFile, TimeSpan interval, TimeProvider time, ILogger logger)
    {
        _certificateFile = certificateFile;
        _keyFile = keyFile;
        _interval = interval;
        _time = time;
        _logger = logger;
        _state = Load(ReadFiles()) ?? throw new CryptographicException($"cannot load a certificate and key from {certificateFile} and {keyFile}");
        _nextCheck = time.GetTimestamp() + (long)(interval.TotalSeconds * time.TimestampFrequency);
        Log.Loaded(logger, _state.Context.TargetCertificate.Subject, _state.Context.TargetCertificate.NotAfter);
    }

    /// <summary>The certificate (with its chain) for a new TLS connection.</summary>
    public SslStreamCertificateContext Current
    {
        get
        {
            var now = _time.GetTimestamp();
            if (now >= Volatile.Read(ref _nextCheck))
            {
                Refresh(now);
            }

            return Volatile.Read(ref _state).Context;
        }
    }

    /// <summary>Loads the pair or returns the reason it cannot be loaded (for start-up validation).</summary>
    public static string? TryValidate(string certificateFile, string keyFile)
    {
        try
        {
            using var certificate = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
            return certificate.HasPrivateKey ? null : "the key does not belong to the certificate";
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            return ex.Message;
        }
    }

    private void Refresh(long now)
    {
        lock (_gate)
        {
            if (now < _nextCheck)
            {
                return;
            }

            Volatile.Write(ref _nextCheck, now + (long)(_interval.TotalSeconds * _time.TimestampFrequency));
            byte[] certificate;
            byte[] key;
            try
            {
                (certificate, key) = ReadFiles();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.ReloadFailed(_logger, ex.Message);
                return;
            }

            if (SHA256.HashData([.. certificate, .. key]).AsSpan().SequenceEqual(_state.Hash))
            {
                return;
            }

            if (Load((certificate, key)) is { } state)
            {
                Volatile.Write(ref _state, state);
                Log.Loaded(_logger, state.Context.TargetCertificate.Subject, state.Context.TargetCertificate.NotAfter);
            }
        }
    }

    private (byte[] Certificate, byte[] Key) ReadFiles() => (File.ReadAllBytes(_certificateFile), File.ReadAllBytes(_keyFile));

    private State? Load((byte[] Certificate, byte[] Key) files)
    {
        try
        {
            var certificatePem = System.Text.Encoding.ASCII.GetString(files.Certificate);
            var leaf = X509Certificate2.CreateFromPem(certificatePem, System.Text.Encoding.ASCII.GetString(files.Key));
            var chain = new X509Certificate2Collection();
            chain.ImportFromPem(certificatePem);
            var intermediates = new X509Certificate2Collection();
            foreach (var certificate in chain)
            {
                if (certificate.Thumbprint != leaf.Thumbprint)
                {
                    intermediates.Add(certificate);
                }
            }

            return new State(SslStreamCertificateContext.Create(leaf, intermediates, offline: true), SHA256.HashData([.. files.Certificate, .. files.Key]));
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            Log.ReloadFailed(_logger, ex.Message);
            return null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Information, "Serving TLS with certificate {Subject}, valid until {NotAfter:u}")]
        public static partial void Loaded(ILogger logger, string subject, DateTime notAfter);

        [LoggerMessage(7002, LogLevel.Warning, "The new TLS certificate could not be loaded; the previous one stays in service: {Reason}")]
        public static partial void ReloadFailed(ILogger logger, string reason);
    }
}
