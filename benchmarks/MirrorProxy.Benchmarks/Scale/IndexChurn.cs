using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Benchmarks.Scale;

/// <summary>
/// <c>index-churn DIR UPDATES TAGS</c>: UPDATES tag updates spread over TAGS tags through the index, as
/// revalidations and moved tags write them, with the upkeep the mirror runs (compaction when the log has doubled,
/// a log checkpoint every 100,000 updates), then the index's disk use. Two phases: same-size updates (a
/// revalidation: new time, same digest) and moves (a new digest, alternating media types of other lengths, so that
/// each update appends a record).
/// </summary>
internal static class IndexChurn
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 3 || !long.TryParse(args[1], out var updates) || !int.TryParse(args[2], out var tags))
        {
            Console.Error.WriteLine("usage: index-churn DIR UPDATES TAGS");
            return 2;
        }

        var directory = args[0];
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        using var index = CacheIndex.Open(directory, new IndexSettings(1L << 20, 1L << 23), NullLogger.Instance);
        var digests = Enumerable.Range(0, 16).Select(i => Digest.ComputeSha256(BitConverter.GetBytes(i))).ToArray();
        var started = Stopwatch.GetTimestamp();
        var compactions = 0;
        var peak = 0L;
        for (var i = 0L; i < updates; i++)
        {
            var tag = (int)(i % tags);
            var move = i >= updates / 2;
            var mediaType = move && i % 2 == 0 ? MediaTypes.DockerManifest : MediaTypes.OciManifest;
            var digest = move ? digests[(int)(i / tags % digests.Length)] : digests[0];
            index.PutTag("docker.io", $"library/app{tag % 100}", $"v{tag}", new TagRecord(digest, mediaType, 1000, DateTimeOffset.FromUnixTimeMilliseconds(i)));
            if (i % 100_000 == 99_999)
            {
                if (index.NeedsCompaction(16L << 20))
                {
                    index.Compact();
                    compactions++;
                }

                await index.CheckpointAsync(full: false, CancellationToken.None);
                peak = Math.Max(peak, DiskUse(directory));
            }
        }

        await index.CloseCleanlyAsync(CancellationToken.None);
        var elapsed = Stopwatch.GetElapsedTime(started);
        Console.WriteLine($"{updates} tag updates over {tags} tags in {elapsed.TotalSeconds:0.0} s ({updates / elapsed.TotalSeconds:0} a second); " +
            $"{compactions} compactions; log {index.LogBytes} bytes; index directory {DiskUse(directory)} bytes at the end, {peak} bytes at most");
        return 0;
    }

    private static long DiskUse(string directory) =>
        new DirectoryInfo(directory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
}
