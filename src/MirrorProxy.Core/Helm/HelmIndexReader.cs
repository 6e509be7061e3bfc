using System.Text;
using MirrorProxy.Common;

namespace MirrorProxy.Helm;

/// <summary>The chart versions an index lists, for clients of the mirror (selection rules, warm-up).</summary>
internal static class HelmIndexReader
{
    /// <summary>The largest index read (the largest public ones are some tens of MB).</summary>
    public const int MaxIndexSize = 256 * 1024 * 1024;

    /// <summary>Every (chart, version) of the index, in the index's order. Throws <see cref="InvalidDataException"/> when it is not an index.</summary>
    public static async Task<IReadOnlyList<(string Name, string Version)>> ReadVersionsAsync(Stream body, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await new LimitedStream(body, MaxIndexSize).CopyToAsync(buffer, 64 * 1024, cancellationToken).ConfigureAwait(false);
        buffer.Position = 0;
        var entries = new List<(string, string)>();
        using var reader = new StreamReader(buffer, Encoding.UTF8);
        var status = HelmIndexScanner.Scan(reader, null, entry =>
        {
            if (entry.Version is { Length: > 0 } version)
            {
                entries.Add((entry.Chart, version));
            }

            return null;
        });
        return status == IndexScanStatus.Ok ? entries : throw new InvalidDataException($"not a Helm repository index ({status})");
    }
}
