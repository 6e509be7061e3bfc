namespace MirrorProxy.Helm;

/// <summary>Names of classic Helm repositories and charts.</summary>
internal static class HelmNames
{
    /// <summary>A configured repository's name: it is a path segment of the mirror's URLs and a document name.</summary>
    public static bool IsValidRepositoryName(ReadOnlySpan<char> name)
    {
        if (name.Length is 0 or > 64 || !(char.IsAsciiLetterLower(name[0]) || char.IsAsciiDigit(name[0])))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A chart name as indexes have them (Helm asks for lower case, digits and dashes; some use dots and underscores).</summary>
    public static bool IsValidChartName(string name)
    {
        if (name.Length is 0 or > 250 || name is "." or ".." || !char.IsAsciiLetterOrDigit(name[0]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A chart version as it may appear in a URL path segment and a document (SemVer, with '+' build metadata).</summary>
    public static bool IsValidVersion(string version)
    {
        if (version.Length is 0 or > 128 || version is "." or "..")
        {
            return false;
        }

        foreach (var c in version)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+'))
            {
                return false;
            }
        }

        return true;
    }
}
