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
