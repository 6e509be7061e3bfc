using System.Text;
using System.Text.RegularExpressions;

namespace MirrorProxy.Selection;

/// <summary>
/// A glob over slash-separated names, as Harbor's replication filters write them: <c>*</c> is any run of characters
/// within one segment, <c>**</c> any number of whole segments (none included), <c>?</c> one character other than a
/// slash. Everything else is literal. Matched whole, like a path, never as a substring.
/// </summary>
internal sealed class Glob
{
    private readonly Regex _regex;

    private Glob(string pattern, Regex regex)
    {
        Pattern = pattern;
        _regex = regex;
    }

    public string Pattern { get; }

    /// <summary>True when the pattern has no wildcard: it names exactly one thing.</summary>
    public bool IsLiteral => !HasWildcard(Pattern);

    public static bool HasWildcard(ReadOnlySpan<char> text) => text.IndexOfAny('*', '?') >= 0;

    public bool IsMatch(string name) => _regex.IsMatch(name);

    public static Glob Create(string pattern)
    {
        var builder = new StringBuilder("^", pattern.Length * 2 + 8);
        var i = 0;
        while (i < pattern.Length)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                var atStart = i == 0 || pattern[i - 1] == '/';
                var end = i + 2;
                var atEnd = end == pattern.Length || pattern[end] == '/';
                if (atStart && atEnd)
                {
                    if (end == pattern.Length)
                    {
                        // "a/**" is everything below a; a leading "**" alone is everything.
                        builder.Append(".*");
                        i = end;
                    }
                    else
                    {
                        // "**/" is any number of whole segments, none included.
                        builder.Append("(?:[^/]+/)*");
                        i = end + 1;
                    }

                    continue;
                }

                // "a**b" inside a segment is just a star.
                builder.Append("[^/]*");
                i = end;
                continue;
            }

            builder.Append(c switch
            {
                '*' => "[^/]*",
                '?' => "[^/]",
                _ => Regex.Escape(c.ToString()),
            });
            i++;
        }

        builder.Append('$');
        return new Glob(pattern, new Regex(builder.ToString(), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking));
    }

    public override string ToString() => Pattern;
}
