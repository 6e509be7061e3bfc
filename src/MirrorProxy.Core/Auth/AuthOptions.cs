using Microsoft.Extensions.Options;
using MirrorProxy.Helm;
using MirrorProxy.Hosting;
using MirrorProxy.Upstream;

namespace MirrorProxy.Auth;

/// <summary>Who may pull what. Section <c>MirrorProxy:Auth</c>.</summary>
public sealed class AuthOptions
{
    public const string SectionName = "MirrorProxy:Auth";

    /// <summary>
    /// Users, in an htpasswd file with bcrypt entries (<c>htpasswd -B</c>); re-read when it changes. Clients
    /// authenticate with HTTP Basic. Without it every client is anonymous.
    /// </summary>
    public string? HtpasswdFile { get; set; }

    /// <summary>The realm named in the Basic challenge.</summary>
    public string Realm { get; set; } = "mirrorproxy";

    /// <summary>
    /// Which users may pull from which upstream and repository; the first rule that names the user, the upstream
    /// and the repository allows; when rules exist and none matches, the pull is refused. Without rules any
    /// authenticated user may pull from any upstream. Anonymous upstreams are open to everyone either way. A Helm
    /// repository's name stands where an upstream's does, and its chart names where repositories do.
    /// </summary>
    public List<AuthRule> Rules { get; set; } = [];
}

/// <summary>An allowance: users (globs, e.g. <c>ci-*</c>), an upstream name (or empty for any) and a repository glob (<c>team-a/**</c>).</summary>
public sealed class AuthRule
{
    public List<string> Users { get; set; } = [];

    public string? Upstream { get; set; }

    public string? Repository { get; set; }
}

/// <summary>Checks <see cref="AuthOptions"/> at start, against the configured upstreams; every failure names its key.</summary>
internal sealed class AuthOptionsValidator(IOptions<UpstreamSetOptions> upstreams, IOptions<HelmOptions> helm) : IValidateOptions<AuthOptions>
{
    private const string Key = AuthOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        var failures = new List<string>();
        if (options.HtpasswdFile is { } file)
        {
            if (!File.Exists(file))
            {
                failures.Add($"{Key}:HtpasswdFile: '{file}' does not exist");
            }
            else if (HtpasswdUsers.Validate(File.ReadAllLines(file)) is { } error)
            {
                failures.Add($"{Key}:HtpasswdFile: '{file}': {error}");
            }
        }

        if (string.IsNullOrWhiteSpace(options.Realm) || options.Realm.Contains('"'))
        {
            failures.Add($"{Key}:Realm: must be a non-empty name without quotes");
        }

        var names = upstreams.Value.AllNames();
        var helmNames = helm.Value.HelmRepositories.Select(r => r.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < options.Rules.Count; i++)
        {
            var rule = options.Rules[i];
            if (rule.Users.Count == 0 || rule.Users.Any(string.IsNullOrWhiteSpace))
            {
                failures.Add($"{Key}:Rules:{i}:Users: at least one user name or glob is required");
            }

            if (rule.Upstream is { Length: > 0 } upstream && !names.Contains(upstream) && !helmNames.Contains(upstream))
            {
                failures.Add($"{Key}:Rules:{i}:Upstream: '{upstream}' is not the name or alias of a configured upstream, nor the name of a Helm repository");
            }
        }

        if (options.Rules.Count > 0 && options.HtpasswdFile is null)
        {
            failures.Add($"{Key}:Rules: rules name users, but no {Key}:HtpasswdFile says who they are");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
