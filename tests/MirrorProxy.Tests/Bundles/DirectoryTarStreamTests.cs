using System.Diagnostics;
using System.Formats.Tar;
using MirrorProxy.Bundles;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Bundles;

public sealed class DirectoryTarStreamTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private DirectoryTarEntry File(string name, byte[] content)
    {
        var path = _temp.Combine(name.Replace('/', '_'));
        System.IO.File.WriteAllBytes(path, content);
        return new DirectoryTarEntry(name, path, content.Length, new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero), null);
    }

    private List<DirectoryTarEntry> Entries(out Dictionary<string, byte[]> contents)
    {
        var random = new Random(3);
        byte[] Bytes(int length)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            return bytes;
        }

        contents = new Dictionary<string, byte[]>
        {
            ["mirrorproxy-bundle.json"] = Bytes(1000),
            ["empty"] = [],
            ["blobs/sha256/" + new string('a', 64)] = Bytes(512 * 300),
            ["blobs/sha256/" + new string('b', 64)] = Bytes(1_000_003),
            ["a-name-longer-than-the-hundred-bytes-ustar-holds/" + new string('n', 120)] = Bytes(7),
            ["näme-not-ascii"] = Bytes(600),
        };
        var entries = contents.Select(c => File(c.Key, c.Value)).ToList();
        entries.Add(new DirectoryTarEntry("link", _temp.Combine("link"), 0, DateTimeOffset.UnixEpoch, "../../etc/passwd"));
        entries.Add(new DirectoryTarEntry("long-link", _temp.Combine("long-link"), 0, DateTimeOffset.UnixEpoch, "/" + new string('t', 150)));
        return entries;
    }

    [Fact]
    public async Task EveryEntry_ReadsBackWithTarReader_AndTheLengthIsKnownBeforehand()
    {
        var entries = Entries(out var contents);
        await using var tar = new DirectoryTarStream(entries);
        var bytes = new MemoryStream();
        var buffer = new byte[256 * 1024 + 17];
        int read;
        while ((read = await tar.ReadAsync(buffer)) > 0)
        {
            bytes.Write(buffer, 0, read);
        }

        Assert.Equal(tar.TarLength, bytes.Length);
        bytes.Position = 0;
        await using var reader = new TarReader(bytes);
        var seen = new List<string>();
        while (await reader.GetNextEntryAsync(copyData: true) is { } entry)
        {
            seen.Add(entry.Name);
            if (entry.EntryType == TarEntryType.SymbolicLink)
            {
                Assert.Equal(entries.Single(e => e.Name == entry.Name).LinkTarget, entry.LinkName);
                continue;
            }

            Assert.Equal(TarEntryType.RegularFile, entry.EntryType);
            var data = new MemoryStream();
            if (entry.DataStream is { } stream)
            {
                await stream.CopyToAsync(data);
            }

            Assert.Equal(contents[entry.Name], data.ToArray());
        }

        Assert.Equal(entries.Select(e => e.Name), seen);
    }

    [Fact]
    public void GnuTar_ListsAndExtractsTheStream_ByteForByte()
    {
        var entries = Entries(out var contents);
        var archive = _temp.Combine("out.tar");
        using (var tar = new DirectoryTarStream(entries))
        using (var file = System.IO.File.Create(archive))
        {
            // Synchronous reads, in small pieces that end inside headers, files and padding.
            var buffer = new byte[700];
            int read;
            while ((read = tar.Read(buffer, 0, buffer.Length)) > 0)
            {
                file.Write(buffer, 0, read);
            }
        }

        var extracted = _temp.Combine("x");
        Directory.CreateDirectory(extracted);
        using var process = Process.Start(new ProcessStartInfo("tar", ["-xf", archive, "-C", extracted]) { RedirectStandardError = true })!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, error);
        foreach (var (name, content) in contents)
        {
            Assert.Equal(content, System.IO.File.ReadAllBytes(Path.Combine(extracted, name)));
        }

        Assert.Equal("../../etc/passwd", new FileInfo(Path.Combine(extracted, "link")).LinkTarget);
    }

    [Fact]
    public async Task AFileOf8GiBOrMore_HasItsSizeInAPaxRecord()
    {
        const long size = (8L << 30) + 1;
        var path = _temp.Combine("sparse");
        using (var file = System.IO.File.Create(path))
        {
            file.SetLength(size);
        }

        await using var tar = new DirectoryTarStream([new DirectoryTarEntry("blobs/sha256/" + new string('c', 64), path, size, DateTimeOffset.UnixEpoch, null)]);
        // Only the headers are read: the reader does not need the data to tell the entry.
        await using var reader = new TarReader(tar);
        var entry = await reader.GetNextEntryAsync(copyData: false);

        Assert.NotNull(entry);
        Assert.Equal(size, entry.Length);
        Assert.Equal((3 * 512) + (512 * ((size + 511) / 512)) + (2 * 512), tar.TarLength);
    }

    [Fact]
    public async Task AFileShorterThanListed_BreaksTheStream()
    {
        var entry = File("blobs/sha256/" + new string('d', 64), new byte[5000]);
        await using var tar = new DirectoryTarStream([entry with { Size = 6000 }]);

        var error = await Assert.ThrowsAsync<IOException>(async () =>
        {
            var buffer = new byte[4096];
            while (await tar.ReadAsync(buffer) > 0)
            {
            }
        });
        Assert.Contains("became shorter", error.Message, StringComparison.Ordinal);
    }
}
