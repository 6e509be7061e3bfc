using System.Formats.Tar;
using System.IO.Compression;
using MirrorProxy.Common;
using ZstdSharp;

namespace MirrorProxy.Bundles;

/// <summary>
/// Presents a bundle as one plain tar stream, whatever form it came in: a directory (walked and streamed as tar,
/// links and stray files included so that the reader refuses them), a <c>.tar</c>, a <c>.tar.zst</c> or
/// <c>.tar.gz</c> (told by their first bytes), or the numbered parts of a split archive (<c>x.tar.zst.001</c>,
/// <c>.002</c>, …, read back to back).
/// </summary>
internal sealed class BundleSource : IAsyncDisposable
{
    private readonly List<IDisposable> _owned = [];

    private BundleSource(Stream tar, long inputBytes, string description)
    {
        Tar = tar;
        InputBytes = inputBytes;
        Description = description;
    }

    /// <summary>The bundle as a plain tar stream.</summary>
    public Stream Tar { get; private set; }

    /// <summary>Bytes of the input files, for progress (compressed bytes for a compressed archive).</summary>
    public long InputBytes { get; }

    /// <summary>How many input bytes have been read so far.</summary>
    public long InputRead => _counter?.Position ?? 0;

    public string Description { get; }

    /// <summary>Length of the tar stream when it is known without reading it (an uncompressed archive).</summary>
    public long? TarLength { get; private init; }

    private CountingStream? _counter;

    /// <summary>Opens <paramref name="paths"/>: one directory, or the files of one archive (its parts, in order).</summary>
    public static BundleSource Open(IReadOnlyList<string> paths)
    {
        if (paths.Count == 1 && Directory.Exists(paths[0]))
        {
            return OpenDirectory(paths[0]);
        }

        var parts = ExpandParts(paths);
        foreach (var part in parts)
        {
            if (!File.Exists(part))
            {
                throw new FileNotFoundException($"'{part}' does not exist", part);
            }
        }

        var files = parts.Select(p => (Stream)new FileStream(p, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan)).ToList();
        var total = parts.Sum(p => new FileInfo(p).Length);
        var counter = new CountingStream(new ConcatenatedStream(files));
        var magic = new byte[4];
        var peeked = counter.PeekAsync(magic);
        Stream tar = magic switch
        {
            [0x28, 0xB5, 0x2F, 0xFD] when peeked == 4 => new ZstdReadStream(new DecompressionStream(counter, leaveOpen: true)),
            [0x1F, 0x8B, ..] when peeked >= 2 => new GZipStream(counter, CompressionMode.Decompress, leaveOpen: true),
            _ => counter,
        };
        var source = new BundleSource(tar, total, parts.Count == 1 ? parts[0] : $"{parts[0]} (+{parts.Count - 1} parts)")
        {
            _counter = counter,
            // Regular files only: a pipe has no length to announce.
            TarLength = ReferenceEquals(tar, counter) && files.All(f => f.CanSeek) ? total : null,
        };
        source._owned.Add(counter);
        return source;
    }

    /// <summary>A lone <c>NAME.001</c> brings its siblings <c>NAME.002</c>, … along.</summary>
    private static List<string> ExpandParts(IReadOnlyList<string> paths)
    {
        if (paths.Count != 1 || !paths[0].EndsWith(".001", StringComparison.Ordinal))
        {
            return [.. paths];
        }

        var stem = paths[0][..^4];
        var parts = new List<string>();
        for (var i = 1; i < 1000 && File.Exists($"{stem}.{i:D3}"); i++)
        {
            parts.Add($"{stem}.{i:D3}");
        }

        return parts.Count == 0 ? [.. paths] : parts;
    }

    /// <summary>
    /// A directory streamed as tar (<see cref="DirectoryTarStream"/>, of known length): the manifest and its signature
    /// first, then the layout files, then the blobs, then anything else found there (which the reader refuses).
    /// Symbolic links go in as links, not followed.
    /// </summary>
    private static BundleSource OpenDirectory(string directory)
    {
        var root = Path.GetFullPath(directory);
        var entries = new List<(string Name, FileSystemInfo Info)>();
        foreach (var info in new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, ReturnSpecialDirectories = false }))
        {
            var name = Path.GetRelativePath(root, info.FullName).Replace('\\', '/');
            if (info is DirectoryInfo && info.LinkTarget is null)
            {
                continue;
            }

            entries.Add((name, info));
        }

        static int Rank(string name) => name switch
        {
            BundleLayout.ManifestFile => 0,
            BundleLayout.SignatureFile => 1,
            BundleLayout.OciLayoutFile => 2,
            BundleLayout.IndexFile => 3,
            _ when name.StartsWith(BundleLayout.BlobPrefix, StringComparison.Ordinal) => 4,
            _ => 5,
        };

        entries.Sort((a, b) => Rank(a.Name) != Rank(b.Name) ? Rank(a.Name).CompareTo(Rank(b.Name)) : string.CompareOrdinal(a.Name, b.Name));
        var tarEntries = entries.ConvertAll(e => new DirectoryTarEntry(e.Name, e.Info.FullName, e.Info is FileInfo file && e.Info.LinkTarget is null ? file.Length : 0,
            e.Info.LastWriteTimeUtc, e.Info.LinkTarget));
        var tar = new DirectoryTarStream(tarEntries);
        var counter = new CountingStream(tar);
        var source = new BundleSource(counter, tarEntries.Sum(e => e.Size), root) { _counter = counter, TarLength = tar.TarLength };
        source._owned.Add(counter);
        return source;
    }

    public async ValueTask DisposeAsync()
    {
        await Tar.DisposeAsync().ConfigureAwait(false);
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }
}

/// <summary>Reads several streams back to back, disposing each when it ends.</summary>
internal sealed class ConcatenatedStream(IReadOnlyList<Stream> parts) : ReadOnlyStream
{
    private int _index;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (_index < parts.Count)
        {
            var read = parts[_index].Read(buffer);
            if (read > 0 || buffer.IsEmpty)
            {
                return read;
            }

            parts[_index++].Dispose();
        }

        return 0;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_index < parts.Count)
        {
            var read = await parts[_index].ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read > 0 || buffer.IsEmpty)
            {
                return read;
            }

            await parts[_index++].DisposeAsync().ConfigureAwait(false);
        }

        return 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            for (; _index < parts.Count; _index++)
            {
                parts[_index].Dispose();
            }
        }

        base.Dispose(disposing);
    }
}

/// <summary>Counts the bytes read through it (for progress); can look at the first bytes without consuming them.</summary>
internal sealed class CountingStream(Stream inner) : ReadOnlyStream
{
    private byte[]? _peeked;
    private int _peekedOffset;
    private long _position;

    public override long Position { get => Interlocked.Read(ref _position); set => throw new NotSupportedException(); }

    /// <summary>Reads up to <paramref name="buffer"/>'s length ahead; the bytes are returned again by the next reads.</summary>
    public int PeekAsync(byte[] buffer)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = inner.Read(buffer, filled, buffer.Length - filled);
            if (read == 0)
            {
                break;
            }

            filled += read;
        }

        _peeked = buffer[..filled];
        return filled;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (TakePeeked(buffer) is > 0 and var fromPeek)
        {
            return fromPeek;
        }

        var read = inner.Read(buffer);
        Interlocked.Add(ref _position, read);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (TakePeeked(buffer.Span) is > 0 and var fromPeek)
        {
            return fromPeek;
        }

        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _position, read);
        return read;
    }

    private int TakePeeked(Span<byte> buffer)
    {
        if (_peeked is null)
        {
            return 0;
        }

        var count = Math.Min(buffer.Length, _peeked.Length - _peekedOffset);
        _peeked.AsSpan(_peekedOffset, count).CopyTo(buffer);
        _peekedOffset += count;
        Interlocked.Add(ref _position, count);
        if (_peekedOffset == _peeked.Length)
        {
            _peeked = null;
        }

        return count;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>Reports damaged zstd data as <see cref="InvalidDataException"/>, as the other decompressors do.</summary>
internal sealed class ZstdReadStream(DecompressionStream inner) : ReadOnlyStream
{
    public override int Read(byte[] buffer, int offset, int count)
    {
        try
        {
            return inner.Read(buffer, offset, count);
        }
        catch (ZstdException ex)
        {
            throw new InvalidDataException("the zstd stream is damaged: " + ex.Message, ex);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (ZstdException ex)
        {
            throw new InvalidDataException("the zstd stream is damaged: " + ex.Message, ex);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
