using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;
using MirrorProxy.Upstream;

namespace MirrorProxy.PullThrough;

/// <summary>How long cached tags are trusted. Keys directly under <c>MirrorProxy</c>.</summary>
public sealed class PullThroughOptions
{
    /// <summary>How long a cached tag is served without asking upstream. Zero revalidates on every request.</summary>
    public TimeSpan TagTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Revalidation windows by upstream, repository and tag pattern; the first match wins.</summary>
    public List<TagTtlRule> TagTtlRules { get; set; } = [];

    /// <summary>
    /// Whether an upstream 404 for a cached tag removes it from what the mirror serves. Off by default: an
    /// upstream deletion (or a misconfigured upstream) must not take running workloads' images away.
    /// </summary>
    public bool HonourUpstreamNotFound { get; set; }
}

/// <summary>A revalidation window for tags matching glob patterns (<c>*</c> any run of characters, <c>?</c> one).</summary>
public sealed class TagTtlRule
{
    /// <summary>Upstream name; null or empty matches every upstream.</summary>
    public string? Upstream { get; set; }

    /// <summary>Repository glob, e.g. <c>library/*</c>; null matches every repository.</summary>
    public string? Repository { get; set; }

    /// <summary>Tag glob, e.g. <c>latest</c> or <c>v*.*.*</c>; null matches every tag.</summary>
    public string? Tag { get; set; }

    public TimeSpan Ttl { get; set; }
}

/// <summary>Checks <see cref="PullThroughOptions"/> at start, against the configured upstreams; every failure names its key.</summary>
internal sealed class PullThroughOptionsValidator(IOptions<UpstreamSetOptions> upstreams) : IValidateOptions<PullThroughOptions>
{
    private const string Root = ServerOptions.SectionName;

    public ValidateOptionsResult Validate(string? name, PullThroughOptions options)
    {
        var failures = new List<string>();
        if (options.TagTtl < TimeSpan.Zero)
        {
            failures.Add($"{Root}:TagTtl: must not be negative");
        }

        var names = upstreams.Value.AllNames();
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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
