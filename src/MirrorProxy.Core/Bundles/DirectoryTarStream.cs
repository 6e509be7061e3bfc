using System.Text;
using MirrorProxy.Common;

namespace MirrorProxy.Bundles;

/// <summary>One entry of a directory streamed as tar: a regular file of <see cref="Size"/> bytes, or a symbolic link.</summary>
internal readonly record struct DirectoryTarEntry(string Name, string FullPath, long Size, DateTimeOffset Modified, string? LinkTarget);

/// <summary>
/// A directory as a tar stream, made as it is read: POSIX ustar headers, preceded by a pax header where ustar
/// cannot say it (a name or link of more than 100 bytes or not ASCII, a file of 8 GiB or more). File bytes go from
/// the file straight into the reader's buffer, with no copy in between and no second task, and the length of the
/// whole stream is known before the first byte (so an upload can announce it). A file that became shorter since
/// it was listed breaks the stream with an <see cref="IOException"/>; bytes past its listed size are not read.
/// </summary>
internal sealed class DirectoryTarStream : ReadOnlyStream
{
    private const int Block = 512;
    private const long MaxUstarNumber = (1L << 33) - 1;

    private readonly IReadOnlyList<DirectoryTarEntry> _entries;
    private int _next;
    private byte[] _pending = [];
    private int _pendingOffset;
    private FileStream? _file;
    private string? _fileName;
    private long _fileLeft;
    private int _padding;
    private bool _ended;

    public DirectoryTarStream(IReadOnlyList<DirectoryTarEntry> entries)
    {
        _entries = entries;
        // Two zero blocks end the archive.
        TarLength = entries.Sum(e => Header(e).Length + Padded(DataSize(e))) + 2 * Block;
    }

    /// <summary>The length of the whole tar stream.</summary>
    public long TarLength { get; }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            filled += FillOutsideFiles(buffer[filled..]);
            if (_fileLeft == 0 || filled == buffer.Length)
            {
                break;
            }

            filled += Took(_file!.Read(buffer.Slice(filled, Want(buffer.Length - filled))));
        }

        return filled;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            filled += FillOutsideFiles(buffer.Span[filled..]);
            if (_fileLeft == 0 || filled == buffer.Length)
            {
                break;
            }

            filled += Took(await _file!.ReadAsync(buffer.Slice(filled, Want(buffer.Length - filled)), cancellationToken).ConfigureAwait(false));
        }

        return filled;
    }

    /// <summary>Headers, padding and the end blocks; stops where file bytes are due, or at the end.</summary>
    private int FillOutsideFiles(Span<byte> buffer)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            if (_pendingOffset < _pending.Length)
            {
                var count = Math.Min(buffer.Length - filled, _pending.Length - _pendingOffset);
                _pending.AsSpan(_pendingOffset, count).CopyTo(buffer[filled..]);
                _pendingOffset += count;
                filled += count;
            }
            else if (_fileLeft > 0)
            {
                break;
            }
            else if (_padding > 0)
            {
                var count = Math.Min(buffer.Length - filled, _padding);
                buffer.Slice(filled, count).Clear();
                _padding -= count;
                filled += count;
            }
            else if (!Advance())
            {
                break;
            }
        }

        return filled;
    }

    /// <summary>Moves to the next entry (its header pending, its file open), or to the end blocks; false at the very end.</summary>
    private bool Advance()
    {
        if (_next < _entries.Count)
        {
            var entry = _entries[_next++];
            _pending = Header(entry);
            _pendingOffset = 0;
            var size = DataSize(entry);
            if (size > 0)
            {
                _file = new FileStream(entry.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
                _fileName = entry.Name;
                _fileLeft = size;
                _padding = (int)(Padded(size) - size);
            }

            return true;
        }

        if (_ended)
        {
            return false;
        }

        _ended = true;
        _pending = new byte[2 * Block];
        _pendingOffset = 0;
        return true;
    }

    private int Want(int room) => (int)Math.Min(room, _fileLeft);

    private int Took(int read)
    {
        if (read == 0)
        {
            throw new IOException($"{_fileName} became shorter while it was read ({_fileLeft} bytes missing)");
        }

        _fileLeft -= read;
        if (_fileLeft == 0)
        {
            _file!.Dispose();
            _file = null;
        }

        return read;
    }

    private static long DataSize(DirectoryTarEntry entry) => entry.LinkTarget is null ? entry.Size : 0;

    private static long Padded(long size) => (size + Block - 1) / Block * Block;

    /// <summary>The header blocks of an entry: a pax header first when ustar alone cannot describe it.</summary>
    private static byte[] Header(DirectoryTarEntry entry)
    {
        var name = Encoding.UTF8.GetBytes(entry.Name);
        var link = entry.LinkTarget is null ? [] : Encoding.UTF8.GetBytes(entry.LinkTarget);
        var size = DataSize(entry);
        var modified = Math.Clamp(entry.Modified.ToUnixTimeSeconds(), 0, MaxUstarNumber);
        var type = entry.LinkTarget is null ? (byte)'0' : (byte)'2';
        var mode = entry.LinkTarget is null ? 0b110_100_100 : 0b111_111_111;

        var pax = new List<byte>();
        if (name.Length > 100 || !Ascii.IsValid(name))
        {
            AddRecord(pax, "path", name);
        }

        if (link.Length > 100 || !Ascii.IsValid(link))
        {
            AddRecord(pax, "linkpath", link);
        }

        if (size > MaxUstarNumber)
        {
            AddRecord(pax, "size", Encoding.ASCII.GetBytes(size.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        var paxLength = pax.Count == 0 ? 0 : Block + (int)Padded(pax.Count);
        var header = new byte[paxLength + Block];
        if (pax.Count > 0)
        {
            WriteUstar(header.AsSpan(0, Block), "PaxHeader"u8, (byte)'x', pax.Count, modified, [], 0b110_100_100);
            pax.CopyTo(header, Block);
        }

        // Where a pax record says it, the ustar field holds what fits (readers take the pax value).
        WriteUstar(header.AsSpan(paxLength, Block), name.AsSpan(0, Math.Min(100, name.Length)), type, size > MaxUstarNumber ? 0 : size, modified,
            link.AsSpan(0, Math.Min(100, link.Length)), mode);
        return header;
    }

    /// <summary>A pax record, <c>LENGTH KEY=VALUE\n</c>, where LENGTH counts the whole record, its own digits included.</summary>
    private static void AddRecord(List<byte> records, string key, ReadOnlySpan<byte> value)
    {
        var rest = 1 + key.Length + 1 + value.Length + 1;
        var length = rest;
        while (length != rest + Digits(length))
        {
            length = rest + Digits(length);
        }

        records.AddRange(Encoding.ASCII.GetBytes($"{length} {key}="));
        records.AddRange(value);
        records.Add((byte)'\n');

        static int Digits(int n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture).Length;
    }

    private static void WriteUstar(Span<byte> header, ReadOnlySpan<byte> name, byte type, long size, long modified, ReadOnlySpan<byte> link, int mode)
    {
        header.Clear();
        name.CopyTo(header);
        Octal(header.Slice(100, 8), mode);
        Octal(header.Slice(108, 8), 0);
        Octal(header.Slice(116, 8), 0);
        Octal(header.Slice(124, 12), size);
        Octal(header.Slice(136, 12), modified);
        header[156] = type;
        link.CopyTo(header[157..]);
        "ustar\0"u8.CopyTo(header[257..]);
        "00"u8.CopyTo(header[263..]);

        // The checksum is taken with its own field as spaces; written as six digits, a NUL and a space.
        header.Slice(148, 8).Fill((byte)' ');
        var sum = 0;
        foreach (var b in header)
        {
            sum += b;
        }

        Octal(header.Slice(148, 7), sum);
    }

    /// <summary>Zero-padded octal digits filling all but the field's last byte, which is a NUL.</summary>
    private static void Octal(Span<byte> field, long value)
    {
        for (var i = field.Length - 2; i >= 0; i--)
        {
            field[i] = (byte)('0' + (value & 7));
            value >>= 3;
        }

        field[^1] = 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _file?.Dispose();
            _file = null;
        }

        base.Dispose(disposing);
    }
}
