using Semver;
using MirrorProxy.Selection;

namespace MirrorProxy.Helm;

/// <summary>
/// A chart of a classic Helm repository, as <c>warm</c>, <c>check</c> and pin sets take it among image references:
/// <c>helm:REPOSITORY/CHART@VERSION</c> (exactly that version), <c>helm:REPOSITORY/CHART@RANGE</c> (the newest version
/// in the range: <c>&gt;=1.14,&lt;2</c>, <c>^1.14</c>, <c>~1.14.2</c>, <c>1.x</c>; commas for spaces, as image lists split on
/// spaces), or <c>helm:REPOSITORY/CHART</c> (the newest release). REPOSITORY is a name configured on the mirror.
/// </summary>
internal sealed record ChartReference(string Repository, string Chart, string? Version)
{
    public static bool IsChart(string text) => text.StartsWith(SelectionTarget.ChartPrefix, StringComparison.Ordinal);

    public override string ToString() => $"{SelectionTarget.ChartPrefix}{Repository}/{Chart}{(Version is null ? "" : "@" + Version)}";

    public static bool TryParse(string text, out ChartReference? reference, out string error)
    {
        reference = null;
        error = "";
        text = text.Trim();
        if (!IsChart(text))
        {
            error = "a chart reference starts with helm:";
            return false;
        }

        var rest = text[SelectionTarget.ChartPrefix.Length..];
        var at = rest.IndexOf('@');
        var version = at < 0 ? null : rest[(at + 1)..];
        var name = at < 0 ? rest : rest[..at];
        var slash = name.IndexOf('/');
        if (slash <= 0 || !HelmNames.IsValidRepositoryName(name.AsSpan(0, slash)) || !HelmNames.IsValidChartName(name[(slash + 1)..]))
        {
            error = $"'{text}' is not helm:REPOSITORY/CHART[@VERSION-or-range]";
            return false;
        }

        if (version is { Length: 0 })
        {
            error = $"'{text}': the version after '@' is empty";
            return false;
        }

        reference = new ChartReference(name[..slash], name[(slash + 1)..], version);
        return true;
    }

    /// <summary>
    /// The version of <paramref name="available"/> this reference means: the one written exactly, else the newest in
    /// the range, else (no version given) the newest that is not a pre-release. Null when none; an error when the
    /// version is neither a version of the chart nor a range.
    /// </summary>
    public string? Resolve(IEnumerable<string> available, out string? error)
    {
        error = null;
        var versions = available.ToList();
        if (Version is { } exact && versions.Contains(exact, StringComparer.Ordinal))
        {
            return exact;
        }

        SemVersionRange? range = null;
        if (Version is not null && !SemVersionRange.TryParseNpm(Version.Replace(',', ' '), out range))
        {
            error = $"'{Version}' is neither a version of {Chart} nor a version range";
            return null;
        }

        return versions
            .Select(v => (Text: v, Parsed: SemVersion.TryParse(v, CompiledRule.VersionStyles, out var parsed) ? parsed : null))
            .Where(v => v.Parsed is not null && (range is null ? !v.Parsed.IsPrerelease : range.Contains(v.Parsed)))
            .OrderByDescending(v => v.Parsed!, SemVersion.PrecedenceComparer)
            .Select(v => v.Text)
            .FirstOrDefault();
    }
}
