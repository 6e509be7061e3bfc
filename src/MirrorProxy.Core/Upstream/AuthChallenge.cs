namespace MirrorProxy.Upstream;

/// <summary>One challenge from a <c>WWW-Authenticate</c> header (RFC 7235 §4.1).</summary>
internal sealed record AuthChallenge(string Scheme, IReadOnlyDictionary<string, string> Parameters)
{
    public bool IsBearer => Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase);

    public bool IsBasic => Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase);

    public string? Realm => Parameters.GetValueOrDefault("realm");

    public string? Service => Parameters.GetValueOrDefault("service");

    public string? Scope => Parameters.GetValueOrDefault("scope");

    public string? Error => Parameters.GetValueOrDefault("error");

    /// <summary>
    /// Parses every challenge in the header values. Parameter values may be quoted (with escapes) or bare tokens,
    /// several challenges may share one header, and quoted values may contain commas (<c>scope="repository:x:pull,push"</c>).
    /// </summary>
    public static List<AuthChallenge> Parse(IEnumerable<string> headerValues)
    {
        var result = new List<AuthChallenge>();
        foreach (var header in headerValues)
        {
            ParseOne(header, result);
        }

        return result;
    }

    private static void ParseOne(string s, List<AuthChallenge> result)
    {
        var i = 0;
        string? scheme = null;
        Dictionary<string, string>? parameters = null;

        while (i < s.Length)
        {
            SkipWhitespaceAndCommas(s, ref i);
            if (i >= s.Length)
            {
                break;
            }

            var tokenStart = i;
            while (i < s.Length && IsTokenChar(s[i]))
            {
                i++;
            }

            if (i == tokenStart)
            {
                // Not a token: skip the character to guarantee progress on malformed input.
                i++;
                continue;
            }

            var token = s[tokenStart..i];
            var afterToken = i;
            SkipWhitespace(s, ref i);

            if (i < s.Length && s[i] == '=' && scheme is not null && (i + 1 >= s.Length || s[i + 1] != '='))
            {
                // auth-param: name = ( token / quoted-string )
                i++;
                SkipWhitespace(s, ref i);
                var value = ReadValue(s, ref i);
                parameters![token.ToLowerInvariant()] = value;
                continue;
            }

            if (i < s.Length && s[i] == '=' && scheme is not null)
            {
                // token68 (e.g. "Negotiate abc=="): keep it whole, it carries no parameters we use.
                while (i < s.Length && s[i] != ',')
                {
                    i++;
                }

                continue;
            }

            // A new challenge begins with its scheme.
            if (scheme is not null)
            {
                result.Add(new AuthChallenge(scheme, parameters!));
            }

            scheme = token;
            parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            i = afterToken;
        }

        if (scheme is not null)
        {
            result.Add(new AuthChallenge(scheme, parameters!));
        }
    }

    private static string ReadValue(string s, ref int i)
    {
        if (i < s.Length && s[i] == '"')
        {
            i++;
            var builder = new System.Text.StringBuilder();
            while (i < s.Length && s[i] != '"')
            {
                if (s[i] == '\\' && i + 1 < s.Length)
                {
                    i++;
                }

                builder.Append(s[i]);
                i++;
            }

            i++; // closing quote (or end of input)
            return builder.ToString();
        }

        var start = i;
        while (i < s.Length && s[i] != ',' && !char.IsWhiteSpace(s[i]))
        {
            i++;
        }

        return s[start..i];
    }

    private static void SkipWhitespace(string s, ref int i)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i]))
        {
            i++;
        }
    }

    private static void SkipWhitespaceAndCommas(string s, ref int i)
    {
        while (i < s.Length && (char.IsWhiteSpace(s[i]) || s[i] == ','))
        {
            i++;
        }
    }

    // RFC 7230 tchar.
    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
}
