using Microsoft.Extensions.Options;

namespace MirrorProxy.Hosting;

/// <summary>Where and how the mirror listens and logs. Keys directly under <c>MirrorProxy</c>.</summary>
public sealed class ServerOptions
{
    /// <summary>The configuration section every feature's options live under.</summary>
    public const string SectionName = "MirrorProxy";

    /// <summary><c>HOST:PORT</c>, <c>:PORT</c> (every interface) or <c>[v6]:PORT</c>.</summary>
    public string Listen { get; set; } = ":5000";

    /// <summary>TLS for <see cref="Listen"/>; plain HTTP when no certificate is set.</summary>
    public TlsOptions Tls { get; set; } = new();

    /// <summary>An extra plain-HTTP address while TLS is on (for loopback probes or insecure setups), e.g. <c>127.0.0.1:5001</c>.</summary>
    public string? PlainListen { get; set; }

    /// <summary>Console log format: <c>text</c> (one line per event) or <c>json</c> (for log shippers).</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>Log one line per request. Off by default, so cache hits cost no log line.</summary>
    public bool AccessLog { get; set; }
}

public sealed class TlsOptions
{
    /// <summary>PEM certificate, with its chain after it (cert-manager's <c>tls.crt</c>).</summary>
    public string? CertificateFile { get; set; }

    /// <summary>PEM private key (cert-manager's <c>tls.key</c>).</summary>
    public string? KeyFile { get; set; }

    /// <summary>How often, at most, the files are checked for a renewed certificate.</summary>
    public TimeSpan ReloadInterval { get; set; } = TimeSpan.FromSeconds(5);

    public bool Enabled => CertificateFile is not null || KeyFile is not null;
}

/// <summary>Checks <see cref="ServerOptions"/> at start; every failure names its key.</summary>
internal sealed class ServerOptionsValidator : IValidateOptions<ServerOptions>
{
    private const string Root = ServerOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, ServerOptions options)
    {
        var failures = new List<string>();
        if (!ListenAddress.TryParse(options.Listen, out _, out var listenError))
        {
            failures.Add($"{Root}:Listen: {listenError}");
        }

        if (options.Tls.Enabled)
        {
            if (options.Tls.CertificateFile is null || options.Tls.KeyFile is null)
            {
                failures.Add($"{Root}:Tls: set both CertificateFile and KeyFile (--tls-cert and --tls-key)");
            }
            else if (ServerCertificateProvider.TryValidate(options.Tls.CertificateFile, options.Tls.KeyFile) is { } tlsError)
            {
                failures.Add($"{Root}:Tls:CertificateFile: cannot use '{options.Tls.CertificateFile}' with '{options.Tls.KeyFile}': {tlsError}");
            }

            if (options.Tls.ReloadInterval <= TimeSpan.Zero)
            {
                failures.Add($"{Root}:Tls:ReloadInterval: must be positive");
            }
        }

        if (options.PlainListen is { } plain && !ListenAddress.TryParse(plain, out _, out var plainError))
        {
            failures.Add($"{Root}:PlainListen: {plainError}");
        }

        if (options.LogFormat is not ("text" or "json"))
        {
            failures.Add($"{Root}:LogFormat: must be text or json, got '{options.LogFormat}'");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
