using System.Text.RegularExpressions;
using MirrorProxy.Upstream;
using Microsoft.Extensions.Options;

namespace MirrorProxy.PullThrough;

/// <summary>
/// How long a cached tag is served without asking upstream: the first matching <see cref="TagTtlRule"/>, else
/// the upstream's <c>TagTtl</c>, else the global <c>TagTtl</c>. Digests are immutable and never revalidated.
/// </summary>
internal sealed class TagFreshnessPolicy
{
    private readonly (string? Upstream, Regex? Repository, Regex? Tag, TimeSpan Ttl)[] _rules;
    private readonly TimeSpan _default;

    public TagFreshnessPolicy(IOptions<PullThroughOptions> options)
    {
        var value = options.Value;
        _default = value.TagTtl;
        _rules = value.TagTtlRules
            .Select(r => (string.IsNullOrEmpty(r.Upstream) ? null : r.Upstream, Glob(r.Repository), Glob(r.Tag), r.Ttl))
            .ToArray();
    }

    public TimeSpan TtlFor(UpstreamRegistry upstream, string repository, string tag)
    {
        foreach (var (ruleUpstream, repositoryPattern, tagPattern, ttl) in _rules)
        {
            if ((ruleUpstream is null || upstream.Names.Contains(ruleUpstream, StringComparer.OrdinalIgnoreCase))
                && (repositoryPattern is null || repositoryPattern.IsMatch(repository))
                && (tagPattern is null || tagPattern.IsMatch(tag)))
            {
                return ttl;
            }
        }

        return upstream.Options.TagTtl ?? _default;
    }

    private static Regex? Glob(string? pattern) => string.IsNullOrEmpty(pattern)
        ? null
        : new Regex("^" + Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$",
            RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromMilliseconds(100));
}
