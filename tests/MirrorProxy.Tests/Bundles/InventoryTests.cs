using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Bundles;
using MirrorProxy.Oci;

namespace MirrorProxy.Tests.Bundles;

public sealed class InventoryTests
{
    private static IEnumerable<Digest> Digests(int count)
    {
        var seed = new byte[4];
        for (var i = 0; i < count; i++)
        {
            BitConverter.TryWriteBytes(seed, i);
            yield return Digest.ComputeSha256(seed);
        }
    }

    private static async IAsyncEnumerable<Digest> DigestsAsync(int count)
    {
        foreach (var digest in Digests(count))
        {
            yield return digest;
        }

        await Task.CompletedTask;
    }

    [Fact]
    public async Task AMillionObjects_StreamOutAndBackIn_AtAbout75BytesEach()
    {
        const int Count = 1_000_000;
        var path = Path.GetTempFileName();
        try
        {
            await using (var file = File.Create(path))
            {
                Assert.Equal(Count, await Inventory.WriteAsync(file, "island", DateTimeOffset.UnixEpoch, DigestsAsync(Count), CancellationToken.None));
            }

            var size = new FileInfo(path).Length;
            Assert.InRange(size, Count * 74L, Count * 76L);

            // The reader hands out one digest at a time; only the ones asked about are kept.
            var wanted = Digests(Count).Where((_, i) => i % 250_000 == 7).Select(d => d.Value).Append("sha256:" + new string('0', 64)).ToHashSet();
            var found = new List<string>();
            await using var input = File.OpenRead(path);
            var (header, error) = await Inventory.ReadAsync(input, d =>
            {
                if (wanted.Contains(d))
                {
                    found.Add(d);
                }
            }, CancellationToken.None);

            Assert.True(header is not null, error);
            Assert.Equal(Count, header!.Count);
            Assert.Equal("island", header.MirrorId);
            Assert.Equal(4, found.Count);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(path))), header.Sha256);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task TruncatedOrForeignFiles_AreNotInventories()
    {
        using var whole = new MemoryStream();
        await Inventory.WriteAsync(whole, "island", DateTimeOffset.UnixEpoch, DigestsAsync(1000), CancellationToken.None);
        var bytes = whole.ToArray();

        var (header, error) = await Inventory.ReadAsync(new MemoryStream(bytes[..(bytes.Length / 2)]), _ => { }, CancellationToken.None);
        Assert.Null(header);
        Assert.NotEmpty(error);

        (header, error) = await Inventory.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes("""{"images":[]}""")), _ => { }, CancellationToken.None);
        Assert.Null(header);
        Assert.Contains("not a complete inventory", error, StringComparison.Ordinal);

        var lying = Encoding.UTF8.GetString(bytes).Replace("\"count\":1000", "\"count\":1001", StringComparison.Ordinal);
        (header, error) = await Inventory.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(lying)), _ => { }, CancellationToken.None);
        Assert.Null(header);
        Assert.Contains("truncated", error, StringComparison.Ordinal);
    }
}
