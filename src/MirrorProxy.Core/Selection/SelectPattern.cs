namespace MirrorProxy.Selection;

/// <summary>
/// <c>--select</c>: <c>registry/repository-glob[:tag-glob]</c>, e.g. <c>docker.io/library/**:1.2*</c>, or for charts
/// <c>helm:REPOSITORY/CHART-glob[@version-glob]</c>. Without a tag glob, every tag.
/// </summary>
internal static class SelectPattern
{
    public static bool TryParse(string pattern, out SelectionRule? rule, out string error)
    {
        rule = null;
        error = "";
        pattern = pattern.Trim();
        string target;
        string? tag = null;
        if (pattern.StartsWith(SelectionTarget.ChartPrefix, StringComparison.Ordinal))
        {
            var at = pattern.IndexOf('@');
            target = at < 0 ? pattern : pattern[..at];
            tag = at < 0 ? null : pattern[(at + 1)..];
        }
        else
        {
            var colon = pattern.LastIndexOf(':');
            // A registry's port is always followed by a slash; a colon after the last slash starts the tag glob.
            var hasTag = colon > pattern.LastIndexOf('/');
            target = hasTag ? pattern[..colon] : pattern;
            tag = hasTag ? pattern[(colon + 1)..] : null;
        }

        if (tag is { Length: 0 })
        {
            error = $"'{pattern}': the tag glob after the separator is empty";
            return false;
        }

        var candidate = new SelectionRule { Repository = target, Tag = tag };
        if (!CompiledRule.TryCompile(candidate, 0, out _, out var errors))
        {
            error = $"'{pattern}': {string.Join("; ", errors)}";
            return false;
        }

        rule = candidate;
        return true;
    }
}
