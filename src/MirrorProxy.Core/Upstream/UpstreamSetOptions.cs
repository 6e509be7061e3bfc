using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;
using MirrorProxy.Oci;

namespace MirrorProxy.Upstream;

/// <summary>The upstream registries. Keys <c>MirrorProxy:Upstreams</c> and <c>MirrorProxy:DefaultUpstream</c>.</summary>
public sealed class UpstreamSetOptions
{
    public List<UpstreamOptions> Upstreams { get; set; } = [];

    /// <summary>Name of the upstream that serves requests neither <c>ns</c> nor a path prefix route. Defaults to the first upstream.</summary>
    public string? DefaultUpstream { get; set; }

    /// <summary>Every name and alias, for the validators of other features.</summary>
    internal HashSet<string> AllNames() =>
        Upstreams.SelectMany(u => u.Aliases.Prepend(u.Name)).Where(n => n.Length > 0).ToHashSet(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Checks the upstreams at start; every failure names its key. Never prints a credential.</summary>
internal sealed class UpstreamSetOptionsValidator : IValidateOptions<UpstreamSetOptions>
{
    private const string Root = ServerOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, UpstreamSetOptions options)
    {
        var failures = new List<string>();
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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Basic credentials and a CA bundle, as a registry upstream and a Helm repository take them; failures name <paramref name="key"/>.</summary>
    internal static void ValidateCredentials(string key, string? username, string? password, string? passwordFile, string? caFile, List<string> failures)
    {
        if (password is not null && passwordFile is not null)
        {
            failures.Add($"{key}: set Password or PasswordFile, not both");
        }

        if ((password is not null || passwordFile is not null) && string.IsNullOrEmpty(username))
        {
            failures.Add($"{key}:Username: required when a password is set");
        }

        if (passwordFile is not null && !File.Exists(passwordFile))
        {
            failures.Add($"{key}:PasswordFile: '{passwordFile}' does not exist");
        }

        if (caFile is not null)
        {
            try
            {
                var bundle = new X509Certificate2Collection();
                bundle.ImportFromPemFile(caFile);
                if (bundle.Count == 0)
                {
                    failures.Add($"{key}:CaFile: '{caFile}' holds no PEM certificate");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
            {
                failures.Add($"{key}:CaFile: cannot read '{caFile}': {ex.Message}");
            }
        }
    }

    private static void ValidateUpstream(UpstreamOptions upstream, string key, HashSet<string> names, List<string> failures)
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
            // The URL itself is not echoed: a malformed one may still carry a password.
            failures.Add($"{key}:Url: not an absolute http:// or https:// URL");
        }
        else if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            failures.Add($"{key}:Url: must not carry credentials (user:password@); set {key}:Username and Password or PasswordFile");
        }
        else if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
        {
            failures.Add($"{key}:Url: '{upstream.Url}' must not have a query or fragment");
        }
        else if (uri.AbsolutePath.Trim('/') is { Length: > 0 } prefix && !OciNames.IsValidRepository(prefix))
        {
            failures.Add($"{key}:Url: the path prefix '{prefix}' is not a valid repository path");
        }

        ValidateCredentials(key, upstream.Username, upstream.Password, upstream.PasswordFile, upstream.CaFile, failures);

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
        CheckPositive(upstream.MinBlobThroughputWindow, $"{key}:MinBlobThroughputWindow", failures);
        if (upstream.MinBlobThroughput.Bytes < 0)
        {
            failures.Add($"{key}:MinBlobThroughput: must not be negative, got {upstream.MinBlobThroughput}");
        }

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
