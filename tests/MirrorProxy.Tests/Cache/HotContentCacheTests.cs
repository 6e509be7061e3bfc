using MirrorProxy.Cache;
using MirrorProxy.Storage;

namespace MirrorProxy.Tests.Cache;

public sealed class HotContentCacheTests
{
    [Fact]
    public void Add_OverBudget_DropsTheLeastRecentlyUsed()
    {
        var cache = new HotContentCache(budget: 1000, maxObjectSize: 400);
        cache.Add("a", new byte[300], Entry(300));
        cache.Add("b", new byte[300], Entry(300));
        cache.Add("c", new byte[300], Entry(300));
        Assert.True(cache.TryGet("a", out _)); // a is now the most recently used

        cache.Add("d", new byte[300], Entry(300));

        Assert.True(cache.Bytes <= 1000);
        Assert.True(cache.TryGet("a", out _));
        Assert.True(cache.TryGet("d", out _));
        Assert.False(cache.TryGet("b", out _));
    }

    [Fact]
    public async Task Add_ManyAtOnceOverBudget_NeverThrows_AndIsBackWithinBudgetAtTheNextAdd()
    {
        var cache = new HotContentCache(budget: 64 * 1024, maxObjectSize: 1024);
        var next = -1;

        // Requests loading small content in parallel: the cache trims while others add to it.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < 200_000)
            {
                cache.Add($"sha256:{i:x64}", new byte[512], Entry(512));
            }
        })));

        // What was added while one request trimmed is trimmed by the next that adds.
        cache.Add("sha256:last", new byte[512], Entry(512));
        Assert.True(cache.Bytes <= 64 * 1024, $"{cache.Bytes} bytes held");
    }

    [Fact]
    public void Add_LargerThanTheObjectLimit_IsNotHeld()
    {
        var cache = new HotContentCache(budget: 1000, maxObjectSize: 100);
        cache.Add("big", new byte[101], Entry(101));

        Assert.False(cache.TryGet("big", out _));
        Assert.Equal(0, cache.Bytes);
    }

    [Fact]
    public void ZeroBudget_HoldsNothing()
    {
        var cache = new HotContentCache(budget: 0, maxObjectSize: 100);
        cache.Add("x", new byte[1], Entry(1));

        Assert.Equal(-1, cache.MaxObjectSize);
        Assert.False(cache.TryGet("x", out _));
    }

    private static ContentEntry Entry(long size) => new(size, ContentKind.Blob, null, DateTimeOffset.UnixEpoch);
}
