using System.Numerics;
using MirrorProxy.Oci;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Hosting;

/// <summary>Checks the whole configuration at start; every failure names its configuration key.</summary>
internal sealed class MirrorProxyOptionsValidator : IValidateOptions<MirrorProxyOptions>
{
    private const string Root = MirrorProxyOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, MirrorProxyOptions options)
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

        if (options.Upstreams.Count == 0)
        {
            failures.Add($"{Root}:Upstreams: at least one upstream is required");
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < options.Upstreams.Count; i++)
        {
            ValidateUpstream(options.Upstreams[i], $"{Root}:Upstreams:{i}", names, failures);
        }

        if (options.DefaultUpstream is { Length: > 0 } defaultUpstream && !names.Contains(defaultUpstream))
        {
            failures.Add($"{Root}:DefaultUpstream: '{defaultUpstream}' is not the name or alias of a configured upstream");
        }

        if (options.TagTtl < TimeSpan.Zero)
        {
            failures.Add($"{Root}:TagTtl: must not be negative");
        }

        for (var i = 0; i < options.TagTtlRules.Count; i++)
        {
            var rule = options.TagTtlRules[i];
            if (rule.Ttl < TimeSpan.Zero)
            {
                failures.Add($"{Root}:TagTtlRules:{i}:Ttl: must not be negative");
            }

            if (rule.Upstream is { Length: > 0 } upstream && !names.Contains(upstream))
            {
                failures.Add($"{Root}:TagTtlRules:{i}:Upstream: '{upstream}' is not the name or alias of a configured upstream");
            }
        }

        if (options.Admin.Token is not null && options.Admin.TokenFile is not null)
        {
            failures.Add($"{Root}:Admin: set Token or TokenFile, not both");
        }

        if (options.Admin.TokenFile is { } tokenFile && !File.Exists(tokenFile))
        {
            failures.Add($"{Root}:Admin:TokenFile: '{tokenFile}' does not exist");
        }

        if (options.LogFormat is not ("text" or "json"))
        {
            failures.Add($"{Root}:LogFormat: must be text or json, got '{options.LogFormat}'");
        }

        var cache = options.Cache;
        if (string.IsNullOrWhiteSpace(cache.Path))
        {
            failures.Add($"{Root}:Cache:Path: a directory is required");
        }

        if (cache.IndexSizeBytes < 1 << 16 || !BitOperations.IsPow2(cache.IndexSizeBytes))
        {
            failures.Add($"{Root}:Cache:IndexSizeBytes: must be a power of two of at least 65536, got {cache.IndexSizeBytes}");
        }

        if (cache.LogMemoryBytes < 1 << 18 || !BitOperations.IsPow2(cache.LogMemoryBytes))
        {
            failures.Add($"{Root}:Cache:LogMemoryBytes: must be a power of two of at least 262144, got {cache.LogMemoryBytes}");
        }

        if (cache.MaxSize is { Bytes: <= 0 })
        {
            failures.Add($"{Root}:Cache:MaxSize: must be positive, got {cache.MaxSize}");
        }

        if (cache.EvictionGracePeriod < TimeSpan.Zero)
        {
            failures.Add($"{Root}:Cache:EvictionGracePeriod: must not be negative");
        }

        if (cache.EvictionInterval <= TimeSpan.Zero)
        {
            failures.Add($"{Root}:Cache:EvictionInterval: must be positive");
        }

        if (cache.CheckpointInterval <= TimeSpan.Zero)
        {
            failures.Add($"{Root}:Cache:CheckpointInterval: must be positive");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateUpstream(Upstream.UpstreamOptions upstream, string key, HashSet<string> names, List<string> failures)
    {
        if (string.IsNullOrWhiteSpace(upstream.Name))
        {
            failures.Add($"{key}:Name: a registry name (such as docker.io) is required");
        }
        else
        {
            foreach (var alias in upstream.Aliases.Prepend(upstream.Name))
            {
                if (!IsRoutableName(alias))
                {
                    failures.Add($"{key}: '{alias}' cannot be a namespace: use lower-case letters, digits, '.', '-' and an optional ':port'");
                }
                else if (!names.Add(alias))
                {
                    failures.Add($"{key}: the name '{alias}' is used by two upstreams");
                }
            }
        }

        if (!Uri.TryCreate(upstream.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            failures.Add($"{key}:Url: '{upstream.Url}' is not an absolute http:// or https:// URL");
        }
        else if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            failures.Add($"{key}:Url: '{upstream.Url}' must not have a query or fragment");
        }
        else if (uri.AbsolutePath.Trim('/') is { Length: > 0 } prefix && !OciNames.IsValidRepository(prefix))
        {
            failures.Add($"{key}:Url: the path prefix '{prefix}' is not a valid repository path");
        }

        if (upstream.Password is not null && upstream.PasswordFile is not null)
        {
            failures.Add($"{key}: set Password or PasswordFile, not both");
        }

        if ((upstream.Password is not null || upstream.PasswordFile is not null) && string.IsNullOrEmpty(upstream.Username))
        {
            failures.Add($"{key}:Username: required when a password is set");
        }

        if (upstream.PasswordFile is not null && !File.Exists(upstream.PasswordFile))
        {
            failures.Add($"{key}:PasswordFile: '{upstream.PasswordFile}' does not exist");
        }

        if (upstream.CaFile is { } caFile)
        {
            try
            {
                var bundle = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
                bundle.ImportFromPemFile(caFile);
                if (bundle.Count == 0)
                {
                    failures.Add($"{key}:CaFile: '{caFile}' holds no PEM certificate");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                failures.Add($"{key}:CaFile: cannot read '{caFile}': {ex.Message}");
            }
        }

        if ((upstream.ClientCertificateFile is null) != (upstream.ClientKeyFile is null))
        {
            failures.Add($"{key}:ClientCertificateFile: set it together with ClientKeyFile");
        }
        else if (upstream.ClientCertificateFile is { } clientCertificate && ServerCertificateProvider.TryValidate(clientCertificate, upstream.ClientKeyFile!) is { } clientError)
        {
            failures.Add($"{key}:ClientCertificateFile: {clientError}");
        }

        CheckPositive(upstream.ConnectTimeout, $"{key}:ConnectTimeout", failures);
        CheckPositive(upstream.RequestTimeout, $"{key}:RequestTimeout", failures);
        CheckPositive(upstream.BlobRequestTimeout, $"{key}:BlobRequestTimeout", failures);
        CheckPositive(upstream.BlobIdleTimeout, $"{key}:BlobIdleTimeout", failures);
        if (upstream.TagTtl < TimeSpan.Zero)
        {
            failures.Add($"{key}:TagTtl: must not be negative");
        }

        if (upstream.BreakerFailureRatio is <= 0 or > 1)
        {
            failures.Add($"{key}:BreakerFailureRatio: must be above 0 and at most 1, got {upstream.BreakerFailureRatio}");
        }

        if (upstream.BreakerMinimumThroughput < 2)
        {
            failures.Add($"{key}:BreakerMinimumThroughput: must be at least 2, got {upstream.BreakerMinimumThroughput}");
        }

        if (upstream.BreakDuration < TimeSpan.FromMilliseconds(500))
        {
            failures.Add($"{key}:BreakDuration: must be at least 00:00:00.5, got {upstream.BreakDuration}");
        }

        if (upstream.BreakerSamplingDuration < TimeSpan.FromMilliseconds(500))
        {
            failures.Add($"{key}:BreakerSamplingDuration: must be at least 00:00:00.5, got {upstream.BreakerSamplingDuration}");
        }
    }

    private static void CheckPositive(TimeSpan value, string key, List<string> failures)
    {
        if (value <= TimeSpan.Zero)
        {
            failures.Add($"{key}: must be positive, got {value}");
        }
    }

    /// <summary>A registry host as containerd sends it in <c>ns</c>: <c>docker.io</c>, <c>harbor.corp:8443</c>, or a short alias.</summary>
    internal static bool IsRoutableName(string name)
    {
        if (name.Length is 0 or > 255)
        {
            return false;
        }

        var colon = name.IndexOf(':');
        var host = colon < 0 ? name : name[..colon];
        if (colon >= 0 && !ushort.TryParse(name.AsSpan(colon + 1), out _))
        {
            return false;
        }

        return host.Length > 0 && host.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-')
            && host[0] != '.' && host[^1] != '.' && host[0] != '-';
    }
}
