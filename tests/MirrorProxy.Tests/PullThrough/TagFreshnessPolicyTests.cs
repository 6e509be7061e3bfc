using Microsoft.Extensions.Options;
using MirrorProxy.Hosting;
using MirrorProxy.PullThrough;
using MirrorProxy.Tests.Support;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.PullThrough;

public sealed class TagFreshnessPolicyTests : IDisposable
{
    private readonly UpstreamRegistry _dockerHub = Upstream(new UpstreamOptions { Name = "docker.io", Url = "https://registry-1.docker.io", Aliases = ["index.docker.io"] });
    private readonly UpstreamRegistry _ghcr = Upstream(new UpstreamOptions { Name = "ghcr.io", Url = "https://ghcr.io", TagTtl = TimeSpan.FromMinutes(1) });

    [Fact]
    public void TtlFor_NoRules_UsesTheUpstreamTtlThenTheGlobalOne()
    {
        var policy = Policy(TimeSpan.FromMinutes(5));

        Assert.Equal(TimeSpan.FromMinutes(5), policy.TtlFor(_dockerHub, "library/nginx", "latest"));
        Assert.Equal(TimeSpan.FromMinutes(1), policy.TtlFor(_ghcr, "org/app", "latest"));
    }

    [Fact]
    public void TtlFor_SeveralMatchingRules_FirstWins()
    {
        var policy = Policy(
            TimeSpan.FromMinutes(5),
            new TagTtlRule { Tag = "latest", Ttl = TimeSpan.Zero },
            new TagTtlRule { Repository = "library/*", Ttl = TimeSpan.FromHours(1) });

        Assert.Equal(TimeSpan.Zero, policy.TtlFor(_dockerHub, "library/nginx", "latest"));
        Assert.Equal(TimeSpan.FromHours(1), policy.TtlFor(_dockerHub, "library/nginx", "1.27"));
        Assert.Equal(TimeSpan.FromMinutes(5), policy.TtlFor(_dockerHub, "bitnami/redis", "7"));
    }

    [Theory]
    [InlineData("v?.*", "v1.27", true)]
    [InlineData("v?.*", "v10.1", false)]
    [InlineData("1.2", "1.2", true)]
    [InlineData("1.2", "1x2", false)]
    [InlineData("*-alpine", "3.19-alpine", true)]
    [InlineData("*-alpine", "alpine", false)]
    [InlineData("latest", "latest-rc", false)]
    [InlineData("Latest", "latest", false)]
    public void TtlFor_TagGlob_MatchesWholeTagLiterally(string pattern, string tag, bool matches)
    {
        var policy = Policy(TimeSpan.FromMinutes(5), new TagTtlRule { Tag = pattern, Ttl = TimeSpan.FromDays(1) });

        Assert.Equal(matches ? TimeSpan.FromDays(1) : TimeSpan.FromMinutes(5), policy.TtlFor(_dockerHub, "library/nginx", tag));
    }

    [Theory]
    [InlineData("docker.io")]
    [InlineData("index.docker.io")]
    [InlineData("DOCKER.IO")]
    public void TtlFor_RuleNamesTheUpstreamOrAnAlias_AppliesOnlyThere(string ruleUpstream)
    {
        var policy = Policy(TimeSpan.FromMinutes(5), new TagTtlRule { Upstream = ruleUpstream, Ttl = TimeSpan.FromSeconds(10) });

        Assert.Equal(TimeSpan.FromSeconds(10), policy.TtlFor(_dockerHub, "library/nginx", "latest"));
        Assert.Equal(TimeSpan.FromMinutes(1), policy.TtlFor(_ghcr, "org/app", "latest"));
    }

    public void Dispose()
    {
        _dockerHub.Dispose();
        _ghcr.Dispose();
    }

    private static TagFreshnessPolicy Policy(TimeSpan tagTtl, params TagTtlRule[] rules) =>
        new(Options.Create(new PullThroughOptions { TagTtl = tagTtl, TagTtlRules = [.. rules] }));

    private static UpstreamRegistry Upstream(UpstreamOptions options) =>
        TestUpstreams.Create(options, new FakeHttpHandler(_ => throw new InvalidOperationException("the policy must not dial")));
}
