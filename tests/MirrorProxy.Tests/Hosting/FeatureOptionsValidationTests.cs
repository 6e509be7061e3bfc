using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.Tests.Support;
using MirrorProxy.PullThrough;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Hosting;

/// <summary>Every feature's options validator, run together over one configuration as the host runs them at start.</summary>
public sealed class FeatureOptionsValidationTests
{
    [Fact]
    public void Validate_SoundConfiguration_Succeeds()
    {
        var result = Validate(Valid());

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [InlineData("not a url")]
    [InlineData("ftp://ghcr.io")]
    [InlineData("/relative")]
    [InlineData("https://ghcr.io/?x=1")]
    [InlineData("https://ghcr.io/#frag")]
    [InlineData("https://ghcr.io/Bad_Prefix")]
    [InlineData("https://ghcr.io/a//b")]
    public void Validate_BadUrlOfSecondUpstream_FailureNamesItsKey(string url)
    {
        var options = Valid();
        options.Upstreams[1].Url = url;

        AssertSingleFailure(options, "MirrorProxy:Upstreams:1:Url:");
    }

    [Theory]
    [InlineData("https://harbor.test/dockerhub-proxy")]
    [InlineData("http://localhost:5001")]
    [InlineData("https://registry.test/v2/")]
    public void Validate_UrlWithValidPathPrefix_Succeeds(string url)
    {
        var options = Valid();
        options.Upstreams[1].Url = url;

        Assert.True(Validate(options).Succeeded);
    }

    [Fact]
    public void Validate_DuplicateName_IsReportedOnTheSecondUpstream()
    {
        var options = Valid();
        options.Upstreams[1].Name = "docker.io";

        var failure = AssertSingleFailure(options, "MirrorProxy:Upstreams:1:");
        Assert.Contains("'docker.io'", failure);
    }

    [Fact]
    public void Validate_AliasCollidesWithAnotherName_IsReported()
    {
        var options = Valid();
        options.Upstreams[1].Aliases = ["index.docker.io"];

        AssertSingleFailure(options, "MirrorProxy:Upstreams:1:");
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void Validate_MissingName_FailureNamesTheNameKey(string name)
    {
        var options = Valid();
        options.Upstreams[0].Name = name;
        options.Upstreams[0].Aliases = [];

        AssertSingleFailure(options, "MirrorProxy:Upstreams:0:Name:");
    }

    [Theory]
    [InlineData("Docker.io")]
    [InlineData("-docker.io")]
    [InlineData("docker.io.")]
    [InlineData("docker.io:https")]
    [InlineData("a/b")]
    public void Validate_NameThatCannotBeANamespace_IsReported(string name)
    {
        var options = Valid();
        options.Upstreams[1].Name = name;

        AssertSingleFailure(options, "MirrorProxy:Upstreams:1:");
    }

    [Fact]
    public void Validate_PasswordWithoutUsername_FailureNamesUsername()
    {
        var options = Valid();
        options.Upstreams[0].Password = "secret";

        AssertSingleFailure(options, "MirrorProxy:Upstreams:0:Username:");
    }

    [Fact]
    public void Validate_PasswordAndPasswordFile_IsReported()
    {
        using var temp = new TempDirectory();
        var file = temp.Combine("password");
        File.WriteAllText(file, "secret");
        var options = Valid();
        options.Upstreams[0].Username = "user";
        options.Upstreams[0].Password = "secret";
        options.Upstreams[0].PasswordFile = file;

        var failure = AssertSingleFailure(options, "MirrorProxy:Upstreams:0:");
        Assert.Contains("PasswordFile", failure);
    }

    [Fact]
    public void Validate_MissingPasswordFile_FailureNamesPasswordFile()
    {
        var options = Valid();
        options.Upstreams[0].Username = "user";
        options.Upstreams[0].PasswordFile = "/nonexistent/mirrorproxy/password";

        AssertSingleFailure(options, "MirrorProxy:Upstreams:0:PasswordFile:");
    }

    [Theory]
    [InlineData(nameof(UpstreamOptions.ConnectTimeout), 0)]
    [InlineData(nameof(UpstreamOptions.RequestTimeout), 0)]
    [InlineData(nameof(UpstreamOptions.RequestTimeout), -1)]
    [InlineData(nameof(UpstreamOptions.BlobRequestTimeout), 0)]
    [InlineData(nameof(UpstreamOptions.BlobIdleTimeout), -5)]
    public void Validate_NonPositiveTimeout_FailureNamesTheTimeoutKey(string property, int seconds)
    {
        var options = Valid();
        typeof(UpstreamOptions).GetProperty(property)!.SetValue(options.Upstreams[1], TimeSpan.FromSeconds(seconds));

        AssertSingleFailure(options, $"MirrorProxy:Upstreams:1:{property}:");
    }

    [Fact]
    public void Validate_DefaultUpstreamNotConfigured_FailureNamesDefaultUpstream()
    {
        var options = Valid();
        options.DefaultUpstream = "quay.io";

        var failure = AssertSingleFailure(options, "MirrorProxy:DefaultUpstream:");
        Assert.Contains("'quay.io'", failure);
    }

    [Theory]
    [InlineData("ghcr.io")]
    [InlineData("index.docker.io")]
    public void Validate_DefaultUpstreamIsANameOrAlias_Succeeds(string defaultUpstream)
    {
        var options = Valid();
        options.DefaultUpstream = defaultUpstream;

        Assert.True(Validate(options).Succeeded);
    }

    [Fact]
    public void Validate_BadListen_FailureNamesListen()
    {
        var options = Valid();
        options.Listen = "mirror:5000";

        AssertSingleFailure(options, "MirrorProxy:Listen:");
    }

    [Fact]
    public void Validate_NoUpstreams_FailureNamesUpstreams()
    {
        var options = Valid();
        options.Upstreams.Clear();

        AssertSingleFailure(options, "MirrorProxy:Upstreams:");
    }

    [Fact]
    public void Validate_NegativeTagTtl_FailureNamesTagTtl()
    {
        var options = Valid();
        options.TagTtl = TimeSpan.FromSeconds(-1);

        AssertSingleFailure(options, "MirrorProxy:TagTtl:");
    }

    [Fact]
    public void Validate_ZeroTagTtl_Succeeds()
    {
        var options = Valid();
        options.TagTtl = TimeSpan.Zero;

        Assert.True(Validate(options).Succeeded);
    }

    [Fact]
    public void Validate_BadCacheSettings_EachFailureNamesItsKey()
    {
        var options = Valid();
        options.Cache = new CacheOptions { Path = " ", IndexSizeBytes = 1000, LogMemoryBytes = (1 << 18) + 1, CheckpointInterval = TimeSpan.Zero };

        var failures = Validate(options).Failures!.ToList();

        Assert.Equal(4, failures.Count);
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:Cache:Path:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:Cache:IndexSizeBytes:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:Cache:LogMemoryBytes:", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:Cache:CheckpointInterval:", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ManyProblems_AllReportedEachStartingWithItsKey()
    {
        var options = Valid();
        options.Listen = "";
        options.DefaultUpstream = "nowhere";
        options.Upstreams[0].Url = "ftp://x";
        options.Upstreams[1].Name = "docker.io";
        options.Upstreams[1].RequestTimeout = TimeSpan.Zero;

        var failures = Validate(options).Failures!.ToList();

        Assert.Equal(5, failures.Count);
        Assert.All(failures, f => Assert.StartsWith("MirrorProxy:", f));
    }

    [Fact]
    public void Validate_BadTagTtlRules_FailuresNameTheRuleKeys()
    {
        var options = Valid();
        options.TagTtlRules =
        [
            new TagTtlRule { Tag = "latest", Ttl = TimeSpan.FromSeconds(-1) },
            new TagTtlRule { Upstream = "quay.io", Ttl = TimeSpan.FromMinutes(1) },
            new TagTtlRule { Upstream = "index.docker.io", Repository = "library/*", Ttl = TimeSpan.Zero },
        ];

        var failures = Validate(options).Failures!.ToList();

        Assert.Equal(2, failures.Count);
        Assert.StartsWith("MirrorProxy:TagTtlRules:0:Ttl:", failures[0]);
        Assert.StartsWith("MirrorProxy:TagTtlRules:1:Upstream:", failures[1]);
    }

    [Theory]
    [InlineData(nameof(UpstreamOptions.BreakerFailureRatio), 0.0)]
    [InlineData(nameof(UpstreamOptions.BreakerFailureRatio), 1.5)]
    [InlineData(nameof(UpstreamOptions.BreakerMinimumThroughput), 1)]
    [InlineData(nameof(UpstreamOptions.BreakDuration), 0.1)]
    [InlineData(nameof(UpstreamOptions.BreakerSamplingDuration), 0.4)]
    [InlineData(nameof(UpstreamOptions.TagTtl), -1.0)]
    public void Validate_BadBreakerOrTtlSetting_FailureNamesItsKey(string property, double value)
    {
        var options = Valid();
        var info = typeof(UpstreamOptions).GetProperty(property)!;
        var type = Nullable.GetUnderlyingType(info.PropertyType) ?? info.PropertyType;
        object converted = type == typeof(TimeSpan) ? TimeSpan.FromSeconds(value) : type == typeof(int) ? (object)(int)value : value;
        info.SetValue(options.Upstreams[0], converted);

        AssertSingleFailure(options, $"MirrorProxy:Upstreams:0:{property}:");
    }

    [Theory]
    [InlineData("docker.io", true)]
    [InlineData("k8s", true)]
    [InlineData("harbor.corp:8443", true)]
    [InlineData("127.0.0.1:5000", true)]
    [InlineData("", false)]
    [InlineData("Docker.io", false)]
    [InlineData(".docker.io", false)]
    [InlineData("docker.io.", false)]
    [InlineData("-docker.io", false)]
    [InlineData("harbor:99999", false)]
    [InlineData("harbor:", false)]
    [InlineData(":5000", false)]
    [InlineData("a/b", false)]
    [InlineData("a_b", false)]
    public void IsRoutableName_Namespace_FollowsHostGrammar(string name, bool expected)
    {
        Assert.Equal(expected, UpstreamSetOptionsValidator.IsRoutableName(name));
    }

    private static Configuration Valid() => new()
    {
        Listen = ":5000",
        Upstreams =
        [
            new UpstreamOptions { Name = "docker.io", Url = "https://registry-1.docker.io", Aliases = ["index.docker.io"] },
            new UpstreamOptions { Name = "ghcr.io", Url = "https://ghcr.io" },
        ],
        Cache = new CacheOptions { Path = "cache" },
    };

    private static Microsoft.Extensions.Options.ValidateOptionsResult Validate(Configuration options) => options.Validate();

    private static string AssertSingleFailure(Configuration options, string keyPrefix)
    {
        var result = Validate(options);

        Assert.True(result.Failed);
        var failure = Assert.Single(result.Failures!);
        Assert.StartsWith(keyPrefix, failure);
        return failure;
    }

    /// <summary>The options of the features whose validators these tests cover, set as one configuration.</summary>
    internal sealed class Configuration
    {
        public ServerOptions Server { get; } = new();

        public UpstreamSetOptions UpstreamSet { get; } = new();

        public PullThroughOptions PullThrough { get; } = new();

        public CacheOptions Cache { get; set; } = new();

        public string Listen { get => Server.Listen; set => Server.Listen = value; }

        public List<UpstreamOptions> Upstreams { get => UpstreamSet.Upstreams; set => UpstreamSet.Upstreams = value; }

        public string? DefaultUpstream { get => UpstreamSet.DefaultUpstream; set => UpstreamSet.DefaultUpstream = value; }

        public TimeSpan TagTtl { get => PullThrough.TagTtl; set => PullThrough.TagTtl = value; }

        public List<TagTtlRule> TagTtlRules { get => PullThrough.TagTtlRules; set => PullThrough.TagTtlRules = value; }

        public Microsoft.Extensions.Options.ValidateOptionsResult Validate()
        {
            var failures = new[]
            {
                new ServerOptionsValidator().Validate(null, Server),
                new UpstreamSetOptionsValidator().Validate(null, UpstreamSet),
                new PullThroughOptionsValidator(Microsoft.Extensions.Options.Options.Create(UpstreamSet)).Validate(null, PullThrough),
                new CacheOptionsValidator().Validate(null, Cache),
            }.Where(r => r.Failed).SelectMany(r => r.Failures!).ToList();
            return failures.Count == 0 ? Microsoft.Extensions.Options.ValidateOptionsResult.Success : Microsoft.Extensions.Options.ValidateOptionsResult.Fail(failures);
        }
    }
}
