using System.Net;
using MirrorProxy.Hosting;

namespace MirrorProxy.Tests.Hosting;

public sealed class ListenAddressTests
{
    [Theory]
    [InlineData(":5000", "::", 5000)]
    [InlineData("*:80", "::", 80)]
    [InlineData("[::]:8080", "::", 8080)]
    [InlineData("0.0.0.0:8080", "0.0.0.0", 8080)]
    [InlineData("localhost:5000", "127.0.0.1", 5000)]
    [InlineData("LocalHost:5000", "127.0.0.1", 5000)]
    [InlineData("127.0.0.1:5000", "127.0.0.1", 5000)]
    [InlineData("10.1.2.3:65535", "10.1.2.3", 65535)]
    [InlineData("[::1]:5000", "::1", 5000)]
    [InlineData("[fe80::1]:443", "fe80::1", 443)]
    [InlineData(":0", "::", 0)]
    public void TryParse_ValidAddress_YieldsEndPoint(string text, string address, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var endPoint, out var error));

        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), endPoint);
        Assert.Equal("", error);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("5000")]
    [InlineData(":65536")]
    [InlineData(":-1")]
    [InlineData(":abc")]
    [InlineData("localhost:")]
    [InlineData("example.com:80")]
    [InlineData("[::1:80")]
    [InlineData("300.1.1.1:80")]
    public void TryParse_InvalidAddress_FailsWithAMessage(string? text)
    {
        Assert.False(ListenAddress.TryParse(text, out var endPoint, out var error));

        Assert.Null(endPoint);
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    [Fact]
    public void TryParse_HostName_ErrorNamesTheHost()
    {
        Assert.False(ListenAddress.TryParse("mirror.internal:5000", out _, out var error));

        Assert.Contains("'mirror.internal'", error);
    }
}
