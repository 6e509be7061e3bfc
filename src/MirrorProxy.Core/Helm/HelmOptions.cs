using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;
using MirrorProxy.Upstream;

namespace MirrorProxy.Helm;

/// <summary>What a repository's last index lists while its upstream cannot be reached.</summary>
public enum HelmOfflineIndex
{
    /// <summary>Every chart version of the last index, cached or not (a pull of one that is not cached gets 503).</summary>
    Full,
    /// <summary>Only the chart versions the mirror holds: what is listed can be installed.</summary>
    Held,
}

/// <summary>Classic Helm repositories served under <c>/helm/NAME/</c>. Keys <c>MirrorProxy:HelmRepositories</c> and <c>MirrorProxy:HelmOfflineIndex</c>.</summary>
public sealed class HelmOptions
{
    public List<HelmRepositoryOptions> HelmRepositories { get; set; } = [];

    public HelmOfflineIndex HelmOfflineIndex { get; set; } = HelmOfflineIndex.Full;
}

/// <summary>One classic Helm repository (an <c>index.yaml</c> and chart archives). Never printed: it may hold a password.</summary>
public sealed class HelmRepositoryOptions
{
    /// <summary>The name in the mirror's URLs (<c>/helm/NAME/index.yaml</c>) and in chart references (<c>helm:NAME/CHART@VERSION</c>).</summary>
    public string Name { get; set; } = "";

    /// <summary>The repository's URL, as given to <c>helm repo add</c>: <c>https://charts.jetstack.io</c>.</summary>
    public string Url { get; set; } = "";

    /// <summary>
    /// Whether clients need not authenticate to read this repository through the mirror. Defaults to false when the
    /// repository has credentials (what they can read stays private), true otherwise; as for a registry upstream.
    /// </summary>
    public bool? Anonymous { get; set; }

    /// <summary>Basic credentials, sent to the repository's own scheme, host and port only (as Helm does).</summary>
    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>A file whose first line is the password (a mounted Secret). Read at start.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>PEM bundle of CA certificates trusted for this repository, besides the system's.</summary>
    public string? CaFile { get; set; }

    /// <summary>How long the index is served from the cache before it is asked for again (conditionally, with its ETag).</summary>
    public TimeSpan IndexTtl { get; set; } = TimeSpan.FromMinutes(5);

    public override string ToString() => $"{Name}={Url}";
}

/// <summary>Checks the Helm repositories at start; every failure names its key. Never prints a credential.</summary>
internal sealed class HelmOptionsValidator : IValidateOptions<HelmOptions>
{
    private const string Root = ServerOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, HelmOptions options)
    {
        var failures = new List<string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.HelmRepositories.Count; i++)
        {
            var repository = options.HelmRepositories[i];
            var key = $"{Root}:HelmRepositories:{i}";
            if (!HelmNames.IsValidRepositoryName(repository.Name))
            {
                failures.Add($"{key}:Name: '{repository.Name}' is not a repository name: lower-case letters, digits, '.', '_' and '-' (at most 64), as in /helm/NAME/index.yaml");
            }
            else if (!names.Add(repository.Name))
            {
                failures.Add($"{key}:Name: the name '{repository.Name}' is used by two Helm repositories");
            }

            if (!Uri.TryCreate(repository.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                failures.Add($"{key}:Url: not an absolute http:// or https:// URL");
            }
            else if (!string.IsNullOrEmpty(uri.UserInfo))
            {
                failures.Add($"{key}:Url: must not carry credentials (user:password@); set {key}:Username and Password or PasswordFile");
            }
            else if (!string.IsNullOrEmpty(uri.Fragment))
            {
                failures.Add($"{key}:Url: must not have a fragment");
            }

            UpstreamSetOptionsValidator.ValidateCredentials(key, repository.Username, repository.Password, repository.PasswordFile, repository.CaFile, failures);

            if (repository.IndexTtl < TimeSpan.Zero)
            {
                failures.Add($"{key}:IndexTtl: must not be negative, got {repository.IndexTtl}");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
