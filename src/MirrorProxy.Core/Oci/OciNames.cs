namespace MirrorProxy.Oci;

/// <summary>Validation of repository names and tags (distribution-spec "Pulling manifests").</summary>
internal static class OciNames
{
    public const int MaxNameLength = 255;
    public const int MaxTagLength = 128;

    /// <summary>
    /// <c>[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*</c>, at most 255 characters.
    /// </summary>
    public static bool IsValidRepository(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > MaxNameLength)
        {
            return false;
        }

        foreach (var range in name.Split('/'))
        {
            if (!IsValidComponent(name[range]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>One path component: alphanumerics separated by '.', '_', '__' or runs of '-'.</summary>
    public static bool IsValidComponent(ReadOnlySpan<char> component)
    {
        if (component.IsEmpty || !IsLowerAlnum(component[0]) || !IsLowerAlnum(component[^1]))
        {
            return false;
        }

        for (var i = 1; i < component.Length - 1; i++)
        {
            var c = component[i];
            if (IsLowerAlnum(c))
            {
                continue;
            }

            if (c == '.')
            {
                if (!IsLowerAlnum(component[i + 1]))
                {
                    return false;
                }
            }
            else if (c == '_')
            {
                // '_' or '__', never three.
                if (component[i + 1] == '_')
                {
                    if (i + 2 >= component.Length || !IsLowerAlnum(component[i + 2]))
                    {
                        return false;
                    }

                    i++;
                }
                else if (!IsLowerAlnum(component[i + 1]))
                {
                    return false;
                }
            }
            else if (c == '-')
            {
                // Any run of dashes, then an alphanumeric.
                while (i + 1 < component.Length - 1 && component[i + 1] == '-')
                {
                    i++;
                }

                if (!IsLowerAlnum(component[i + 1]))
                {
                    return false;
                }
            }
            else
            {
                return false;
            }
        }

        return true;
    }

    /// <summary><c>[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}</c>.</summary>
    public static bool IsValidTag(ReadOnlySpan<char> tag)
    {
        if (tag.IsEmpty || tag.Length > MaxTagLength || !(char.IsAsciiLetterOrDigit(tag[0]) || tag[0] == '_'))
        {
            return false;
        }

        foreach (var c in tag[1..])
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsLowerAlnum(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');
}
