using System.Buffers;
using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace MirrorProxy.Storage;

/// <summary>
/// A checksum of what FASTER's recovery reads: every checkpoint file, and the log from its begin address to what was
/// flushed when the checkpoint completed. FASTER trusts those bytes: damaged checkpoint metadata can make it allocate
/// gigabytes, and a damaged log page makes its recovery read through a garbage record length and end the process
/// with an access violation that no handler can catch, at every start. So the seal is checked before FASTER opens
/// anything, and an index that does not match it is rebuilt from the files, which are the truth.
/// </summary>
/// <remarks>
/// Written after each successful checkpoint (atomically: a temporary file renamed over the last one). Flushed log
/// pages are never written again (FASTER appends; compaction only moves the begin address), so a log range the last
/// seal named with the same file, offset and length keeps its hash and only the newest segment is read: a
/// checkpoint's seal costs one segment (4 MiB at most), not the whole log (80 MB at 1,000,000 objects). Should such
/// a range be damaged meanwhile, the seal still holds what it was, and the check finds it. The check at start reads
/// every sealed byte, its ranges spread over the cores (XxHash3 hashes at several GB/s; reading is the cost).
/// A process killed between a checkpoint and its seal leaves a seal that does not match: the index is rebuilt, which
/// costs time, never content.
/// </remarks>
internal static class IndexSeal
{
    private const string FileName = "seal";
    private const string Header = "mirrorproxy-index-seal 1";
    private const string CheckpointsPrefix = "checkpoints/";

    /// <summary>Seals the checkpoint files and the log range [<paramref name="begin"/>, <paramref name="end"/>).</summary>
    public static void Write(string directory, string logBaseName, int segmentBits, long begin, long end)
    {
        var sealedBefore = TryRead(directory, out var lines, out _)
            ? lines.Where(line => !line.File.StartsWith(CheckpointsPrefix, StringComparison.Ordinal)).ToDictionary(line => (line.File, line.Offset, line.Length), line => line.Hash)
            : [];
        var text = new StringBuilder(Header).Append('\n');
        foreach (var (file, offset, length) in Ranges(directory, logBaseName, segmentBits, begin, end))
        {
            var hash = sealedBefore.TryGetValue((file, offset, length), out var known) ? known : Hash(Path.Combine(directory, file), offset, length);
            text.Append(CultureInfo.InvariantCulture, $"{file} {offset} {length} {hash:x16}\n");
        }

        var path = Path.Combine(directory, FileName);
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(Encoding.UTF8.GetBytes(text.ToString()));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>
    /// Whether every sealed range still hashes as it did, and no checkpoint file has appeared that the seal does not
    /// name; the reason when not.
    /// </summary>
    public static bool Verify(string directory, out string reason)
    {
        if (!TryRead(directory, out var lines, out reason))
        {
            return false;
        }

        var present = new List<SealedRange>(lines.Count);
        foreach (var line in lines)
        {
            var file = Path.Combine(directory, line.File);
            if (line.File.StartsWith(CheckpointsPrefix, StringComparison.Ordinal) && !File.Exists(file))
            {
                // FASTER removed an outdated checkpoint after the seal was written.
                continue;
            }

            if (new FileInfo(file) is not { Exists: true } info || info.Length < line.Offset + line.Length)
            {
                reason = $"{line.File} is missing or shorter than sealed";
                return false;
            }

            present.Add(line);
        }

        // Read and hashed on every core: at start, the seal is what stands between a large cache and serving.
        var damaged = new string?[present.Count];
        Parallel.For(0, present.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var line = present[i];
            try
            {
                if (Hash(Path.Combine(directory, line.File), line.Offset, line.Length) != line.Hash)
                {
                    damaged[i] = $"{line.File} does not match its seal";
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                damaged[i] = $"{line.File} cannot be read: {ex.Message}";
            }
        });
        if (damaged.FirstOrDefault(d => d is not null) is { } first)
        {
            reason = first;
            return false;
        }

        // A checkpoint the seal does not know (written by a process killed before it sealed it) is what FASTER would
        // recover from. Files that appear later inside a sealed checkpoint (the delta log FASTER opens beside the one
        // it recovered) are not read by recovery from a fold-over checkpoint.
        var sealedFiles = present.Select(line => line.File).ToHashSet(StringComparer.Ordinal);
        var sealedDirectories = sealedFiles.Select(f => Path.GetDirectoryName(f)).ToHashSet(StringComparer.Ordinal);
        foreach (var file in CheckpointFiles(directory))
        {
            if (!sealedFiles.Contains(file) && !sealedDirectories.Contains(Path.GetDirectoryName(file)))
            {
                reason = $"{file} is newer than the seal";
                return false;
            }
        }

        reason = "";
        return true;
    }

    /// <summary>Removes the seal, for an index that starts a new log (nothing of the old one is kept).</summary>
    public static void Discard(string directory) => File.Delete(Path.Combine(directory, FileName));

    private readonly record struct SealedRange(string File, long Offset, long Length, ulong Hash);

    /// <summary>The seal's lines, or why it cannot be read.</summary>
    private static bool TryRead(string directory, out List<SealedRange> ranges, out string reason)
    {
        ranges = [];
        string[] lines;
        try
        {
            lines = File.ReadAllLines(Path.Combine(directory, FileName));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            reason = "the index has no seal (written after each checkpoint): " + ex.Message;
            return false;
        }

        if (lines.Length == 0 || lines[0] != Header)
        {
            reason = "the index seal is not one this version writes";
            return false;
        }

        for (var i = 1; i < lines.Length; i++)
        {
            var parts = lines[i].Split(' ');
            if (parts.Length != 4
                || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
                || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || !ulong.TryParse(parts[3], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hash)
                || parts[0].Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(parts[0]))
            {
                reason = $"line {i + 1} of the index seal is damaged";
                return false;
            }

            ranges.Add(new SealedRange(parts[0], offset, length, hash));
        }

        reason = "";
        return true;
    }

    private static IEnumerable<(string File, long Offset, long Length)> Ranges(string directory, string logBaseName, int segmentBits, long begin, long end)
    {
        foreach (var file in CheckpointFiles(directory))
        {
            yield return (file, 0, new FileInfo(Path.Combine(directory, file)).Length);
        }

        var segmentSize = 1L << segmentBits;
        for (var address = begin; address < end;)
        {
            var segment = address >> segmentBits;
            var offset = address & (segmentSize - 1);
            var length = Math.Min(segmentSize - offset, end - address);
            yield return ($"{logBaseName}.{segment.ToString(CultureInfo.InvariantCulture)}", offset, length);
            address += length;
        }
    }

    private static IEnumerable<string> CheckpointFiles(string directory)
    {
        var checkpoints = Path.Combine(directory, "checkpoints");
        return Directory.Exists(checkpoints)
            ? Directory.EnumerateFiles(checkpoints, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(directory, f).Replace('\\', '/'))
                .Order(StringComparer.Ordinal)
            : [];
    }

    private static ulong Hash(string file, long offset, long length)
    {
        var hash = new XxHash3();
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            while (length > 0)
            {
                var read = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length)), offset);
                if (read == 0)
                {
                    throw new IOException("ended before its sealed length");
                }

                hash.Append(buffer.AsSpan(0, read));
                offset += read;
                length -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return hash.GetCurrentHashAsUInt64();
    }
}
