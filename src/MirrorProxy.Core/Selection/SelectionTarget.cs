using MirrorProxy.Common;
using MirrorProxy.Helm;
using MirrorProxy.Oci;

namespace MirrorProxy.Selection;

internal enum SelectionKind
{
    /// <summary>Images of an OCI registry: tags come from its tag list.</summary>
    Image,
    /// <summary>Charts of a classic Helm repository: versions come from its index.</summary>
    Chart,
}

/// <summary>
/// What a rule's <c>repository</c> names: a registry (or Helm repository) and a glob over its repositories (or
/// charts). A registry is the first segment when it looks like a host (a dot, a port, or <c>localhost</c>), else
/// <c>docker.io</c>, whose one-segment names are under <c>library/</c>, as for image references.
/// </summary>
internal sealed record SelectionTarget(SelectionKind Kind, string Registry, Glob Repository)
{
    public const string ChartPrefix = "helm:";

    public override string ToString() => Kind == SelectionKind.Chart ? $"{ChartPrefix}{Registry}/{Repository}" : $"{Registry}/{Repository}";

    public static bool TryParse(string text, out SelectionTarget? target, out string error)
    {
        target = null;
        error = "";
        text = text.Trim();
        if (text.StartsWith(ChartPrefix, StringComparison.Ordinal))
        {
            var rest = text[ChartPrefix.Length..];
            var slash = rest.IndexOf('/');
            if (slash <= 0 || !HelmNames.IsValidRepositoryName(rest.AsSpan(0, slash)))
            {
                error = $"'{text}' is not helm:REPOSITORY/CHART (a configured Helm repository's name, then a chart name or glob)";
                return false;
            }

            var chart = rest[(slash + 1)..];
            if (chart.Length == 0 || chart.Contains('/') || !IsGlobOf(chart, HelmNames.IsValidChartName))
            {
                error = $"'{chart}' is not a chart name or a glob of one";
                return false;
            }

            target = new SelectionTarget(SelectionKind.Chart, rest[..slash], Glob.Create(chart));
            return true;
        }

        var first = text.IndexOf('/');
        var head = first < 0 ? "" : text[..first];
        string registry;
        string repository;
        if (first > 0 && (head == "localhost" || head.Contains('.') || head.Contains(':')))
        {
            registry = head == "index.docker.io" ? ImageReference.DockerHub : head;
            repository = text[(first + 1)..];
        }
        else
        {
            registry = ImageReference.DockerHub;
            repository = text;
        }

        if (registry.Any(char.IsAsciiLetterUpper) || Glob.HasWildcard(registry))
        {
            error = $"'{registry}' is not a registry: lower case, and no wildcards (the registry decides which upstream is asked)";
            return false;
        }

        if (registry == ImageReference.DockerHub && !repository.Contains('/') && !repository.StartsWith("**", StringComparison.Ordinal))
        {
            repository = "library/" + repository;
        }

        if (repository.Length == 0 || !repository.Split('/').All(segment => segment == "**" || IsGlobOf(segment, s => OciNames.IsValidComponent(s))))
        {
            error = $"'{repository}' is not a repository name or a glob of one (lower-case path segments; '*', '**' and '?')";
            return false;
        }

        target = new SelectionTarget(SelectionKind.Image, registry, Glob.Create(repository));
        return true;
    }

    /// <summary>Whether <paramref name="text"/> becomes a valid name when each wildcard is replaced by a valid character.</summary>
    private static bool IsGlobOf(string text, Func<string, bool> isValid) =>
        text.Length > 0 && isValid(text.Replace("**", "a", StringComparison.Ordinal).Replace('*', 'a').Replace('?', 'a'));
}
