using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using MirrorProxy.Common;
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
/// Who may pull what: anonymous upstreams are open to everyone; the others to authenticated users, and, when
/// <c>Auth:Rules</c> exist, only to the users the first matching rule names.
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

    public AccessDecision Decide(ClientIdentity identity, UpstreamRegistry upstream, string repository)
    {
        if (upstream.IsPublic || identity.IsOperator)
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
                && (ruleUpstream is null || upstream.Names.Contains(ruleUpstream, StringComparer.OrdinalIgnoreCase))
                && (repositoryPattern is null || repositoryPattern.IsMatch(repository)))
            {
                return AccessDecision.Allowed;
            }
        }

        return AccessDecision.Denied;
    }
}
