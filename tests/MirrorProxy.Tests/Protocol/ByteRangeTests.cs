using MirrorProxy.Protocol;

namespace MirrorProxy.Tests.Protocol;

public sealed class ByteRangeTests
{
    [Theory]
    [InlineData("bytes=0-", 10, 0, 9)]
    [InlineData("bytes=5-9", 10, 5, 9)]
    [InlineData("bytes=5-", 10, 5, 9)]
    [InlineData("bytes=0-0", 10, 0, 0)]
    [InlineData("bytes=9-9", 10, 9, 9)]
    [InlineData("bytes=5-100", 10, 5, 9)]
    [InlineData("bytes=-3", 10, 7, 9)]
    [InlineData("bytes=-10", 10, 0, 9)]
    [InlineData("bytes=-30", 10, 0, 9)]
    [InlineData("BYTES=1-2", 10, 1, 2)]
    [InlineData("  bytes= 1-2 ", 10, 1, 2)]
    public void TryParse_SingleRangeInsideContent_IsSatisfiableAndClamped(string header, long total, long start, long end)
    {
        var result = ByteRange.TryParse(header, total, out var range);

        Assert.Equal(RangeParseResult.Satisfiable, result);
        Assert.Equal(new ByteRange(start, end), range);
        Assert.Equal(end - start + 1, range.Length);
    }

    [Theory]
    [InlineData("bytes=10-", 10)]
    [InlineData("bytes=10-20", 10)]
    [InlineData("bytes=100-", 10)]
    [InlineData("bytes=-0", 10)]
    [InlineData("bytes=0-", 0)]
    [InlineData("bytes=0-0", 0)]
    [InlineData("bytes=-5", 0)]
    public void TryParse_RangeOutsideContent_IsNotSatisfiable(string header, long total)
    {
        Assert.Equal(RangeParseResult.NotSatisfiable, ByteRange.TryParse(header, total, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("garbage")]
    [InlineData("items=0-1")]
    [InlineData("bytes=")]
    [InlineData("bytes=-")]
    [InlineData("bytes=abc")]
    [InlineData("bytes=a-b")]
    [InlineData("bytes=5-3")]
    [InlineData("bytes=--1")]
    [InlineData("bytes=+1-2")]
    [InlineData("bytes=0-1,3-4")]
    [InlineData("bytes=0-1, -2")]
    [InlineData("bytes=1234567890123456789-")]
    public void TryParse_IgnoredHeader_IsNone(string header)
    {
        var result = ByteRange.TryParse(header, 10, out var range);

        Assert.Equal(RangeParseResult.None, result);
        Assert.Equal(default, range);
    }
}
