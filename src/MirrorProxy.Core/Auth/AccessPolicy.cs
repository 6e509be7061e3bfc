using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using MirrorProxy.Common;
using MirrorProxy.Helm;
using MirrorProxy.Upstream;

namespace MirrorProxy.Auth;

internal enum AccessDecision
{
    Allowed,
    /// <summary>Only authenticated clients may pull this: 401 with the Basic challenge.</summary>
    AuthenticationRequired,
    /// <summary>This user may not pull this: answered as if it did not exist.</summary>
    Denied,
}

/// <summary>
/// Who may pull what: anonymous upstreams (and Helm repositories) are open to everyone; the others to authenticated
/// users, and, when <c>Auth:Rules</c> exist, only to the users a matching rule names.
/// </summary>
internal sealed class AccessPolicy
{
    private readonly (Regex[] Users, string? Upstream, Regex? Repository)[] _rules;

    public AccessPolicy(IOptions<AuthOptions> options)
    {
        _rules = options.Value.Rules
            .Select(r => (r.Users.Select(Glob.ToRegex).ToArray(), string.IsNullOrEmpty(r.Upstream) ? null : r.Upstream, string.IsNullOrEmpty(r.Repository) ? null : Glob.ToRegex(r.Repository)))
            .ToArray();
    }

    public AccessDecision Decide(ClientIdentity identity, UpstreamRegistry upstream, string repository) =>
        Decide(identity, upstream.IsPublic, upstream.Names, repository);

    /// <summary>
    /// A classic Helm repository, whose name stands for an upstream's in the rules: a rule's repository glob matches
    /// chart names, and the index (<paramref name="chart"/> null), which names every chart, is open to any user a rule
    /// allows for the repository.
    /// </summary>
    public AccessDecision Decide(ClientIdentity identity, HelmRepository repository, string? chart) =>
        Decide(identity, repository.IsPublic, repository.Names, chart);

    private AccessDecision Decide(ClientIdentity identity, bool isPublic, IReadOnlyList<string> names, string? repository)
    {
        if (isPublic || identity.IsOperator)
        {
            return AccessDecision.Allowed;
        }

        if (identity.IsAnonymous)
        {
            return AccessDecision.AuthenticationRequired;
        }

        if (_rules.Length == 0)
        {
            return AccessDecision.Allowed;
        }

        foreach (var (users, ruleUpstream, repositoryPattern) in _rules)
        {
            if (users.Any(u => u.IsMatch(identity.User!))
                && (ruleUpstream is null || names.Contains(ruleUpstream, StringComparer.OrdinalIgnoreCase))
                && (repositoryPattern is null || repository is null || repositoryPattern.IsMatch(repository)))
            {
                return AccessDecision.Allowed;
            }
        }

        return AccessDecision.Denied;
    }
}
