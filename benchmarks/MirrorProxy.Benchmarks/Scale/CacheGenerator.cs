using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Benchmarks.Scale;

/// <summary>
/// <c>generate-cache DIR OBJECTS [TAGS]</c>: writes a cache of OBJECTS small blobs (100 bytes each, distinct) and
/// TAGS tag files in the mirror's on-disk layout, with no index: the mirror builds it on its first start. Used by
/// benchmarks/scale/run.sh to measure start-up and memory against the size of the cache. The objects are dated as a
/// cache in service has them, spread evenly over the last <see cref="Age"/> (a rebuild after a crash looks up only the
/// files written since the last checkpoint, so files all written a minute ago would measure a cache just filled).
/// </summary>
internal static class CacheGenerator
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 2 || !int.TryParse(args[1], out var objects))
        {
            Console.Error.WriteLine("usage: generate-cache DIR OBJECTS [TAGS]");
            return 2;
        }

        var tags = args.Length > 2 && int.TryParse(args[2], out var t) ? t : 0;
        var layout = new CacheLayout(args[0]);
        layout.Initialize();
        var started = Stopwatch.GetTimestamp();
        var now = DateTime.UtcNow;
        var written = 0;
        await Parallel.ForAsync(0, objects, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount * 2 }, async (i, ct) =>
        {
            var content = Content(i);
            var path = layout.BlobPath(Digest.ComputeSha256(content));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllBytesAsync(path, content, ct);
            File.SetLastWriteTimeUtc(path, now - Age * ((double)(objects - i) / objects));
            if (Interlocked.Increment(ref written) % 100_000 == 0)
            {
                Console.Error.WriteLine($"{written} objects");
            }
        });

        var at = DateTimeOffset.UtcNow.ToString("O");
        for (var i = 0; i < tags; i++)
        {
            var digest = Digest.ComputeSha256(Content(i));
            var path = Path.Combine(layout.Root, MetadataKeys.Tag("bench.local", $"scale/app{i % 100}", $"v{i}"));
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, $$"""{"digest":"{{digest}}","mediaType":"{{MediaTypes.OciManifest}}","size":100,"fetchedAt":"{{at}}"}""");
        }

        Console.WriteLine($"{objects} objects ({objects * 100L} bytes) and {tags} tags written to {layout.Root} in {Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s");
        return 0;
    }

    /// <summary>How far back the generated objects' write times reach.</summary>
    public static readonly TimeSpan Age = TimeSpan.FromDays(30);

    /// <summary>The content of object <paramref name="i"/>: 100 bytes, distinct for every i.</summary>
    public static byte[] Content(int i)
    {
        var content = new byte[100];
        BinaryPrimitives.WriteInt32LittleEndian(content, i);
        Encoding.ASCII.GetBytes("mirrorproxy scale benchmark object", content.AsSpan(4));
        SHA256.HashData(content.AsSpan(0, 4), content.AsSpan(68));
        return content;
    }
}
