using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;

namespace MirrorProxy.Tests.Hosting;

public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("300MB", 300_000_000)]
    [InlineData("20GiB", 20L << 30)]
    [InlineData("512k", 512_000)]
    [InlineData("1.5GiB", 3L << 29)]
    [InlineData("1048576", 1_048_576)]
    [InlineData(" 64 MiB ", 64L << 20)]
    [InlineData("0", 0)]
    public void TryParse_Sizes(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out var size));
        Assert.Equal(bytes, size.Bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("lots")]
    [InlineData("-5MB")]
    [InlineData("99999999999TiB")]
    public void TryParse_Rejects(string text) => Assert.False(ByteSize.TryParse(text, out _));

    [Fact]
    public void Configuration_BindsSizesAndNamesTheKeyOnError()
    {
        var good = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Cache:MinFreeDisk"] = "2GiB" }).Build();
        Assert.Equal(2L << 30, good.GetSection("Cache").Get<CacheOptions>()!.MinFreeDisk.Bytes);

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Cache:MinFreeDisk"] = "lots" }).Build();
        var error = Assert.Throws<InvalidOperationException>(() => { _ = bad.GetSection("Cache").Get<CacheOptions>(); });
        Assert.Contains("Cache:MinFreeDisk", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddMirrorProxy_ReadsEverySizeKeyAsText_AndNamesABadOne()
    {
        var values = new Dictionary<string, string?>
        {
            ["MirrorProxy:Cache:MaxSize"] = "1MiB",
            ["MirrorProxy:Cache:ScrubRate"] = "5MB",
            ["MirrorProxy:Storage:S3:MaxSize"] = "2GiB",
            ["MirrorProxy:Upstreams:0:Name"] = "docker.io",
            ["MirrorProxy:Upstreams:0:Url"] = "https://registry-1.docker.io",
            ["MirrorProxy:Upstreams:0:MinBlobThroughput"] = "1KiB",
        };
        using var provider = Services(values);
        Assert.Equal(1L << 20, provider.GetRequiredService<IOptions<CacheOptions>>().Value.MaxSize!.Value.Bytes);
        Assert.Equal(5_000_000, provider.GetRequiredService<IOptions<CacheOptions>>().Value.ScrubRate.Bytes);
        Assert.Equal(2L << 30, provider.GetRequiredService<IOptions<MirrorProxy.Storage.S3.S3Options>>().Value.MaxSize!.Value.Bytes);
        Assert.Equal(1024, provider.GetRequiredService<IOptions<MirrorProxy.Upstream.UpstreamSetOptions>>().Value.Upstreams[0].MinBlobThroughput.Bytes);

        values["MirrorProxy:Cache:MaxSize"] = "plenty";
        using var bad = Services(values);
        var error = Assert.ThrowsAny<Exception>(() => bad.GetRequiredService<IOptions<CacheOptions>>().Value);
        Assert.Contains("Cache:MaxSize", error.Message, StringComparison.Ordinal);
    }

    private static ServiceProvider Services(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        return new ServiceCollection().AddLogging().AddMirrorProxy(configuration).BuildServiceProvider();
    }
}
