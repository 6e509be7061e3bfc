using MirrorProxy.Cache;
using MirrorProxy.Oci;
using MirrorProxy.Storage;

namespace MirrorProxy.Tests.Cache;

public sealed class EvictionCandidatesTests
{
    private static readonly HashSet<(ulong, ulong)> NoPins = [];

    [Theory]
    [InlineData(1_000, 100, int.MaxValue)]
    [InlineData(5_000, 250_000, int.MaxValue)]
    [InlineData(5_000, 250_000, 700)]
    [InlineData(20_000, 10_000_000, int.MaxValue)]
    public void OldestFirst_OneVersionPerKey_IsTheOldestPrefixThatReachesTheTarget(int count, long target, int maxCount)
    {
        var random = new Random(count);
        var records = Enumerable.Range(0, count).Select(i => (Digest: DigestOf(i), Size: (long)random.Next(1, 1000), Access: (long)i)).ToArray();
        random.Shuffle(records);
        var pinned = records.Where((_, i) => i % 97 == 0).Select(r => r.Digest).ToHashSet();
        const long protectedSince = 1_000_000;
        var candidates = new EvictionCandidates(target, protectedSince, pinned.Select(EvictionCandidates.IdOf).ToHashSet(), maxCount);

        foreach (var (digest, size, access) in records)
        {
            Offer(candidates, digest, deleted: false, size, access);
        }

        var expected = new List<(Digest, long)>();
        var bytes = 0L;
        foreach (var (digest, size, _) in records.Where(r => !pinned.Contains(r.Digest) && r.Access <= protectedSince).OrderBy(r => r.Access))
        {
            if (bytes >= target || expected.Count == maxCount)
            {
                break;
            }

            expected.Add((digest, size));
            bytes += size;
        }

        Assert.Equal(expected, candidates.OldestFirst());
    }

    [Fact]
    public void Offer_NewerVersions_ReplaceOrRemoveACandidate()
    {
        var candidates = new EvictionCandidates(target: 300, protectedSince: 1_000, NoPins);
        Offer(candidates, DigestOf(1), deleted: false, 100, 1);
        Offer(candidates, DigestOf(2), deleted: false, 100, 2);
        Offer(candidates, DigestOf(3), deleted: false, 100, 3);
        Offer(candidates, DigestOf(4), deleted: false, 100, 4);

        Offer(candidates, DigestOf(1), deleted: false, 100, 50); // used again since
        Offer(candidates, DigestOf(2), deleted: true, 0, 0); // evicted or quarantined since
        Offer(candidates, DigestOf(5), deleted: false, 100, 5);
        Offer(candidates, DigestOf(6), deleted: false, 100, 2_000); // within the grace period

        Assert.Equal([(DigestOf(3), 100L), (DigestOf(5), 100L), (DigestOf(1), 100L)], candidates.OldestFirst());
    }

    [Fact]
    public void OldestFirst_Sha512Content_KeepsTheWholeDigest()
    {
        var digest = Digest.ComputeSha256([1]);
        Assert.True(Digest.TryParse("sha512:" + new string('a', 64) + new string('b', 64), out var sha512));
        var candidates = new EvictionCandidates(target: 1_000, protectedSince: 1_000, NoPins);
        Offer(candidates, sha512, deleted: false, 10, 2);
        Offer(candidates, digest, deleted: false, 20, 1);

        Assert.Equal([(digest, 20L), (sha512, 10L)], candidates.OldestFirst());
    }

    private static Digest DigestOf(int i) => Digest.ComputeSha256(BitConverter.GetBytes(i));

    private static void Offer(EvictionCandidates candidates, Digest digest, bool deleted, long size, long access)
    {
        Span<byte> key = stackalloc byte[IndexRecords.MaxContentKeyLength];
        var length = IndexRecords.WriteContentKey(digest, key);
        candidates.Offer(key[..length], deleted, size, access);
    }
}
