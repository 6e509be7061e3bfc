using System.Text;
using System.Text.RegularExpressions;

namespace MirrorProxy.Common;

/// <summary>
/// Globs over slash-separated names: <c>*</c> matches within one segment, <c>**</c> across segments (any depth,
/// none included), <c>?</c> one character. Case-sensitive, anchored at both ends: matched whole, like a path, never
/// as a substring. Matching takes time linear in the name, whatever the pattern.
/// </summary>
internal sealed class Glob
{
    private readonly Regex _regex;

    private Glob(string pattern)
    {
        Pattern = pattern;
        _regex = ToRegex(pattern);
    }

    public string Pattern { get; }

    /// <summary>True when the pattern has no wildcard: it names exactly one thing.</summary>
    public bool IsLiteral => !HasWildcard(Pattern);

    public static bool HasWildcard(ReadOnlySpan<char> text) => text.IndexOfAny('*', '?') >= 0;

    public static Glob Create(string pattern) => new(pattern);

    public bool IsMatch(string name) => _regex.IsMatch(name);

    public override string ToString() => Pattern;

    public static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                {
                    // "**/" also matches no directory at all.
                    i++;
                    regex.Append("(?:.*/)?");
                }
                else
                {
                    regex.Append(".*");
                }
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }

        // Patterns come from configuration and rules files: no backtracking, so no pattern can make a match slow.
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
    }
}
