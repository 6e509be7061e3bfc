using System.Text.Json.Serialization;

namespace MirrorProxy.Selection;

/// <summary>
/// One selection rule as written (by <c>--select</c> or in a rules file), and as recorded in a pin set. Everything
/// but <see cref="Repository"/> narrows what it selects; a rule with only a repository selects every tag.
/// </summary>
internal sealed record SelectionRule
{
    /// <summary><c>registry/repository-glob</c> (<c>docker.io/library/**</c>), or <c>helm:REPO/CHART-glob</c> for charts of a classic Helm repository.</summary>
    public required string Repository { get; init; }

    /// <summary>A glob the tag (or chart version) must match; <c>*</c> and <c>?</c>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Tag { get; init; }

    /// <summary>Regular expressions, anchored at both ends: a tag must match one of them.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Include { get; init; }

    /// <summary>Regular expressions, anchored at both ends: a tag matching one of them is left out.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Exclude { get; init; }

    /// <summary>A version range (<c>&gt;=1.27 &lt;2</c>, <c>^1.2</c>, <c>~1.2.3</c>, <c>1.x</c>, <c>||</c>): tags are compared as versions, and tags that are not versions are left out.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Semver { get; init; }

    /// <summary>Whether pre-release versions (<c>2.0.0-rc.1</c>, and variant tags such as <c>1.27.3-alpine</c>) may satisfy <see cref="Semver"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Prereleases { get; init; }

    /// <summary>Only the N newest of what is left: by version when every tag left is one, else the last N in the upstream's order.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Newest { get; init; }

    /// <summary>Platforms of multi-platform images to warm and check (<c>linux/amd64</c>, or <c>all</c>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Platforms { get; init; }

    /// <summary>Repositories (<c>registry/repository</c>) a wildcard in <see cref="Repository"/> is matched against, besides those the mirror has seen.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Repositories { get; init; }
}

/// <summary>
/// Where a selection came from, as a pin set (and a bundle) records it: the rules, the names given for wildcard
/// repositories, and the sources (<c>--select PATTERN</c>, <c>--rules FILE sha256:…</c>).
/// </summary>
internal sealed record SelectionRecord(IReadOnlyList<string> Sources, IReadOnlyList<SelectionRule> Rules, DateTimeOffset ResolvedAt)
{
    /// <summary>Repositories named for the rules' wildcards, from the rules file's top level.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Repositories { get; init; }
}
