using MirrorProxy.Coordination;

namespace MirrorProxy.Tests.Coordination;

public sealed class CoordinationOptionsTests
{
    [Fact]
    public void Validate_WithoutRedis_IsOff_AndValid() => Assert.True(new CoordinationOptionsValidator().Validate(null, new CoordinationOptions()).Succeeded);

    [Fact]
    public void Validate_AConnectionString_Succeeds() =>
        Assert.True(new CoordinationOptionsValidator().Validate(null, new CoordinationOptions { Redis = "garnet.mirror:6379,password=x" }).Succeeded);

    [Fact]
    public void Validate_ATimeoutTooLongForRenewals_NamesTheKey()
    {
        var options = new CoordinationOptions { Redis = "127.0.0.1:6379", LeaseDuration = TimeSpan.FromSeconds(3), Timeout = TimeSpan.FromSeconds(2) };

        var failure = Assert.Single(new CoordinationOptionsValidator().Validate(null, options).Failures!);

        Assert.StartsWith("MirrorProxy:Coordination:Timeout:", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NoEndpoint_NamesTheKey_WithoutThePassword()
    {
        var failure = Assert.Single(new CoordinationOptionsValidator().Validate(null, new CoordinationOptions { Redis = "password=hunter2" }).Failures!);

        Assert.StartsWith("MirrorProxy:Coordination:Redis:", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", failure, StringComparison.Ordinal);
    }
}
