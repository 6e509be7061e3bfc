using System.Formats.Tar;
using ZstdSharp;

namespace MirrorProxy.Bundles;

/// <summary>A file to write into a bundle: its listing, and a way to open a stream of exactly its bytes.</summary>
/// <param name="File">Path, size and sha256 as the manifest lists them.</param>
/// <param name="OpenAsync">Opens the content; the stream throws when what it delivers does not verify.</param>
internal sealed record BundleContent(BundleFile File, Func<CancellationToken, Task<Stream>> OpenAsync);

/// <summary>The forms a bundle is written in.</summary>
internal enum BundleOutputForm
{
    Directory,
    Tar,
    TarZstd,
}

/// <summary>
/// Writes a bundle: a directory (the files, then the manifest, then its signature last, so that an interrupted
/// export is never mistaken for a signed one), or a tar / tar.zst stream (manifest and signature first, as the
/// reader needs them), optionally cut into numbered parts each smaller than a size (FAT32 holds files of 4 GiB − 1).
/// </summary>
internal static class BundleOutput
{
    public static BundleOutputForm FormOf(string path) =>
        path.EndsWith(".tar.zst", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tzst", StringComparison.OrdinalIgnoreCase) ? BundleOutputForm.TarZstd
        : path.EndsWith(".tar", StringComparison.OrdinalIgnoreCase) ? BundleOutputForm.Tar
        : BundleOutputForm.Directory;

    /// <summary>Writes the bundle; returns the files written (the parts, for a split archive).</summary>
    public static async Task<IReadOnlyList<string>> WriteAsync(
        string path, long? splitSize, byte[] manifest, byte[] signature, IReadOnlyList<BundleContent> files, Action<long>? progress, CancellationToken cancellationToken)
    {
        var form = FormOf(path);
        if (form == BundleOutputForm.Directory)
        {
            await WriteDirectoryAsync(path, manifest, signature, files, progress, cancellationToken).ConfigureAwait(false);
            return [path];
        }

        Stream target = splitSize is { } size ? new SplitFileStream(path, size) : new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        try
        {
            await using (target.ConfigureAwait(false))
            {
                Stream archive = form == BundleOutputForm.TarZstd ? new CompressionStream(target, level: 3, leaveOpen: true) : target;
                await using (archive.ConfigureAwait(false))
                {
                    await using var tar = new TarWriter(archive, TarEntryFormat.Pax, leaveOpen: true);
                    await tar.WriteEntryAsync(Entry(BundleLayout.ManifestFile, new MemoryStream(manifest)), cancellationToken).ConfigureAwait(false);
                    await tar.WriteEntryAsync(Entry(BundleLayout.SignatureFile, new MemoryStream(signature)), cancellationToken).ConfigureAwait(false);
                    foreach (var content in files)
                    {
                        await using var source = await content.OpenAsync(cancellationToken).ConfigureAwait(false);
                        await using var counted = new KnownLengthStream(source, content.File.Size, progress);
                        await tar.WriteEntryAsync(Entry(content.File.Path, counted), cancellationToken).ConfigureAwait(false);
                        await counted.EnsureCompleteAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            return target is SplitFileStream split ? split.Parts : [path];
        }
        catch
        {
            foreach (var written in target is SplitFileStream split ? split.Parts : [path])
            {
                File.Delete(written);
            }

            throw;
        }
    }

    private static PaxTarEntry Entry(string name, Stream data) => new(TarEntryType.RegularFile, name)
    {
        DataStream = data,
        Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        ModificationTime = DateTimeOffset.UnixEpoch,
    };

    private static async Task WriteDirectoryAsync(string directory, byte[] manifest, byte[] signature, IReadOnlyList<BundleContent> files, Action<long>? progress, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.Combine(directory, "blobs", "sha256"));
        var buffer = new byte[256 * 1024];
        foreach (var content in files)
        {
            var target = Path.Combine(directory, content.File.Path);
            var partial = target + ".partial";
            await using (var source = await content.OpenAsync(cancellationToken).ConfigureAwait(false))
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None))
            {
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    progress?.Invoke(read);
                }
            }

            File.Move(partial, target, overwrite: true);
        }

        await File.WriteAllBytesAsync(Path.Combine(directory, BundleLayout.ManifestFile), manifest, cancellationToken).ConfigureAwait(false);
        await File.WriteAllBytesAsync(Path.Combine(directory, BundleLayout.SignatureFile), signature, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>
/// Gives the tar writer a stream of known length that it may treat as seekable (it only asks for the length and
/// the position); counts the bytes for progress, and fails if the source ends early or runs long.
/// </summary>
internal sealed class KnownLengthStream(Stream inner, long length, Action<long>? progress) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => _position;
        set
        {
            if (value != _position)
            {
                throw new NotSupportedException("a streamed bundle file cannot be rewound");
            }
        }
    }

    /// <summary>Reads to the source's end (where a verifying source checks its digest) and checks the length.</summary>
    public async Task EnsureCompleteAsync(CancellationToken cancellationToken)
    {
        var probe = new byte[1];
        if (_position != length || await inner.ReadAsync(probe, cancellationToken).ConfigureAwait(false) != 0)
        {
            throw new InvalidDataException($"the content is not the {length} bytes announced");
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, Math.Max(1, length - _position))], cancellationToken).ConfigureAwait(false);
        _position += read;
        if (_position > length)
        {
            throw new InvalidDataException($"the content runs past its {length} bytes");
        }

        if (read == 0 && _position < length)
        {
            throw new InvalidDataException($"the content ended after {_position} of {length} bytes");
        }

        progress?.Invoke(read);
        return read;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        var target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };
        Position = target;
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Writes <c>NAME.001</c>, <c>NAME.002</c>, …, each smaller than <c>splitSize</c>; <c>cat NAME.0*</c> gives the whole.</summary>
internal sealed class SplitFileStream : Stream
{
    private readonly string _stem;
    private readonly long _partBytes;
    private readonly List<string> _parts = [];
    private FileStream? _current;
    private long _inCurrent;

    public SplitFileStream(string stem, long splitSize)
    {
        if (splitSize < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(splitSize));
        }

        _stem = stem;
        _partBytes = splitSize - 1;
    }

    public IReadOnlyList<string> Parts => _parts;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var file = Current();
            var count = (int)Math.Min(buffer.Length, _partBytes - _inCurrent);
            file.Write(buffer[..count]);
            _inCurrent += count;
            buffer = buffer[count..];
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            var file = Current();
            var count = (int)Math.Min(buffer.Length, _partBytes - _inCurrent);
            await file.WriteAsync(buffer[..count], cancellationToken).ConfigureAwait(false);
            _inCurrent += count;
            buffer = buffer[count..];
        }
    }

    private FileStream Current()
    {
        if (_current is not null && _inCurrent < _partBytes)
        {
            return _current;
        }

        _current?.Dispose();
        var path = $"{_stem}.{_parts.Count + 1:D3}";
        _current = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.None);
        _parts.Add(path);
        _inCurrent = 0;
        return _current;
    }

    public override void Flush() => _current?.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _current?.FlushAsync(cancellationToken) ?? Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _current?.Dispose();
            _current = null;
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (_current is not null)
        {
            await _current.DisposeAsync().ConfigureAwait(false);
            _current = null;
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }
}
