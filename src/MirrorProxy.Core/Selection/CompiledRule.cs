using System.Globalization;
using System.Text.RegularExpressions;
using MirrorProxy.Common;
using Semver;

namespace MirrorProxy.Selection;

/// <summary>
/// A rule made ready to apply: its target, its tag filters compiled, its version range parsed. Applying it to the
/// tags of one repository keeps, in this order, the tags matching the tag glob, matching an include expression,
/// matching no exclude expression, and (with a range) those that are versions in the range; then the newest N.
/// </summary>
internal sealed class CompiledRule
{
    /// <summary>How tags that look like versions are read: <c>v1.27</c>, <c>1.27</c> (1.27.0), <c>2024.01.05</c>.</summary>
    internal const SemVersionStyles VersionStyles = SemVersionStyles.AllowV | SemVersionStyles.OptionalMinorPatch | SemVersionStyles.AllowLeadingZeros;

    private static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(1);

    private readonly Glob? _tag;
    private readonly Regex[] _include;
    private readonly Regex[] _exclude;
    private readonly SemVersionRange? _range;

    private CompiledRule(SelectionRule source, int number, SelectionTarget target, Glob? tag, Regex[] include, Regex[] exclude, SemVersionRange? range)
    {
        Source = source;
        Number = number;
        Target = target;
        _tag = tag;
        _include = include;
        _exclude = exclude;
        _range = range;
    }

    public SelectionRule Source { get; }

    /// <summary>1-based position among the rules, for messages.</summary>
    public int Number { get; }

    public SelectionTarget Target { get; }

    public static bool TryCompile(SelectionRule rule, int number, out CompiledRule? compiled, out List<string> errors)
    {
        compiled = null;
        errors = [];
        if (!SelectionTarget.TryParse(rule.Repository, out var target, out var targetError))
        {
            errors.Add("repository: " + targetError);
        }

        Glob? tag = null;
        if (rule.Tag is { } tagGlob)
        {
            if (tagGlob.Length == 0 || tagGlob.Contains('/'))
            {
                errors.Add($"tag: '{tagGlob}' is not a tag glob");
            }
            else
            {
                tag = Glob.Create(tagGlob);
            }
        }

        var include = CompileAll(rule.Include, "tags.include", errors);
        var exclude = CompileAll(rule.Exclude, "tags.exclude", errors);
        SemVersionRange? range = null;
        if (rule.Semver is { } text)
        {
            // Helm and Masterminds write "AND" with commas as well as spaces (">= 1.2, < 2").
            var npm = text.Replace(',', ' ');
            if (string.IsNullOrWhiteSpace(npm) || !SemVersionRange.TryParseNpm(npm, rule.Prereleases, out range))
            {
                errors.Add($"semver: '{text}' is not a version range (for example >=1.27 <2, ^1.2, ~1.2.3, 1.x, or two joined by ||)");
            }
        }

        if (rule.Newest is <= 0)
        {
            errors.Add($"newest: must be 1 or more, got {rule.Newest}");
        }

        if (rule.Platforms is { } platforms && !Oci.PlatformSelection.TryParse(string.Join(',', platforms), out _, out var platformError))
        {
            errors.Add("platforms: " + platformError);
        }

        foreach (var name in rule.Repositories ?? [])
        {
            if (!SelectionTarget.TryParse(name, out var named, out var nameError) || !named!.Repository.IsLiteral)
            {
                errors.Add($"repositories: '{name}' is not a repository name{(nameError.Length > 0 ? ": " + nameError : "")}");
            }
        }

        if (errors.Count > 0)
        {
            return false;
        }

        compiled = new CompiledRule(rule, number, target!, tag, include, exclude, range);
        return true;
    }

    /// <summary>
    /// The tags this rule keeps from <paramref name="tags"/> (in the upstream's order), newest first: by version when
    /// every tag kept is one (ties keep the upstream's order), else the upstream's order reversed (its last is newest).
    /// </summary>
    public IReadOnlyList<string> Apply(IReadOnlyList<string> tags)
    {
        var kept = new List<(string Tag, SemVersion? Version, int Position)>();
        for (var i = 0; i < tags.Count; i++)
        {
            var tag = tags[i];
            if (_tag is not null && !_tag.IsMatch(tag))
            {
                continue;
            }

            if (_include.Length > 0 && !_include.Any(r => r.IsMatch(tag)))
            {
                continue;
            }

            if (_exclude.Any(r => r.IsMatch(tag)))
            {
                continue;
            }

            var isVersion = SemVersion.TryParse(tag, VersionStyles, out var version);
            if (_range is not null && (!isVersion || !_range.Contains(version!)))
            {
                continue;
            }

            kept.Add((tag, isVersion ? version : null, i));
        }

        var byVersion = kept.Count > 0 && kept.All(k => k.Version is not null);
        var ordered = byVersion
            ? kept.OrderByDescending(k => k.Version!, SemVersion.PrecedenceComparer).ThenByDescending(k => k.Position)
            : kept.OrderByDescending(k => k.Position);
        var result = ordered.Select(k => k.Tag);
        return (Source.Newest is { } newest ? result.Take(newest) : result).ToList();
    }

    /// <summary>The rule's platforms as <c>--platform</c> takes them, or null when it names none.</summary>
    public string? Platforms => Source.Platforms is { Count: > 0 } platforms ? string.Join(',', platforms) : null;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"rule {Number} ({Source.Repository})");

    private static Regex[] CompileAll(IReadOnlyList<string>? patterns, string key, List<string> errors)
    {
        var compiled = new List<Regex>();
        foreach (var pattern in patterns ?? [])
        {
            try
            {
                // Anchored: "4.*" means tags starting with 4, not any tag with a 4 in it.
                compiled.Add(new Regex("^(?:" + pattern + ")$", RegexOptions.CultureInvariant, RegexTimeout));
            }
            catch (ArgumentException ex)
            {
                errors.Add($"{key}: '{pattern}' is not a regular expression: {ex.Message}");
            }
        }

        return [.. compiled];
    }
}
