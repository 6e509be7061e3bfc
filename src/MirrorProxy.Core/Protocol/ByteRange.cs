using System.Globalization;

namespace MirrorProxy.Protocol;

internal enum RangeParseResult
{
    /// <summary>No Range header, or one this server ignores (multiple ranges, other units, bad syntax): send the whole body.</summary>
    None,
    Satisfiable,
    /// <summary>A well-formed range outside the content: 416.</summary>
    NotSatisfiable,
}

/// <summary>A single byte range, inclusive on both ends (RFC 9110 §14).</summary>
internal readonly record struct ByteRange(long Start, long End)
{
    public long Length => End - Start + 1;

    /// <summary>
    /// Parses <c>bytes=N-</c>, <c>bytes=N-M</c> and <c>bytes=-S</c> against a known total length.
    /// Multi-range requests are answered with the full body, which RFC 9110 allows.
    /// </summary>
    public static RangeParseResult TryParse(ReadOnlySpan<char> header, long totalLength, out ByteRange range)
    {
        range = default;
        header = header.Trim();
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase))
        {
            return RangeParseResult.None;
        }

        var spec = header["bytes=".Length..].Trim();
        if (spec.Contains(','))
        {
            return RangeParseResult.None;
        }

        var dash = spec.IndexOf('-');
        if (dash < 0)
        {
            return RangeParseResult.None;
        }

        var first = spec[..dash].Trim();
        var second = spec[(dash + 1)..].Trim();

        if (first.IsEmpty)
        {
            // Suffix range: the last N bytes.
            if (!TryParseNumber(second, out var suffix))
            {
                return RangeParseResult.None;
            }

            if (suffix == 0 || totalLength == 0)
            {
                return RangeParseResult.NotSatisfiable;
            }

            var length = Math.Min(suffix, totalLength);
            range = new ByteRange(totalLength - length, totalLength - 1);
            return RangeParseResult.Satisfiable;
        }

        if (!TryParseNumber(first, out var start))
        {
            return RangeParseResult.None;
        }

        long end;
        if (second.IsEmpty)
        {
            end = totalLength - 1;
        }
        else if (!TryParseNumber(second, out end) || end < start)
        {
            return RangeParseResult.None;
        }

        if (start >= totalLength)
        {
            return RangeParseResult.NotSatisfiable;
        }

        range = new ByteRange(start, Math.Min(end, totalLength - 1));
        return RangeParseResult.Satisfiable;
    }

    private static bool TryParseNumber(ReadOnlySpan<char> s, out long value)
    {
        value = 0;
        return !s.IsEmpty && s.Length <= 18 && long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
