using Microsoft.Extensions.Configuration;
using MirrorProxy.Cli;
using MirrorProxy.Cache;
using MirrorProxy.Hosting;
using MirrorProxy.PullThrough;
using MirrorProxy.Resilience;
using MirrorProxy.Upstream;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Cli;

public sealed class ConfigurationLoaderTests : IDisposable
{
    private const string TwoUpstreamsFile = """
        {
          "MirrorProxy": {
            "Listen": "127.0.0.1:6000",
            "Cache": { "Path": "/from/file" },
            "Upstreams": [
              { "Name": "harbor.corp", "Url": "https://harbor.corp/dockerhub-proxy" },
              { "Name": "quay.io", "Url": "https://quay.io" }
            ]
          }
        }
        """;

    private readonly TempDirectory _temp = new();

    [Fact]
    public void Load_NothingGiven_EmbeddedDefaultsHaveSixUpstreamsDockerHubFirst()
    {
        var options = Bind(ConfigurationLoader.Load(new ServeFlags(), NoEnvironment()));

        Assert.Equal(["docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "mcr.microsoft.com"], options.Upstreams.Select(u => u.Name));
        Assert.Equal("https://registry-1.docker.io", options.Upstreams[0].Url);
        Assert.Equal(["index.docker.io", "registry-1.docker.io"], options.Upstreams[0].Aliases);
        Assert.Equal(":5000", options.Listen);
        Assert.Equal(TimeSpan.FromMinutes(5), options.TagTtl);
        Assert.Equal("mirrorproxy-cache", options.Cache.Path);
        Assert.True(new UpstreamSetOptionsValidator().Validate(null, options.UpstreamSet).Succeeded);
    }

    [Fact]
    public void Load_UpstreamFlags_ReplaceEveryConfiguredUpstream()
    {
        var flags = new ServeFlags { Upstreams = ["a.test=https://a.test", " b.test = http://b.test:5000 "] };

        var options = Bind(ConfigurationLoader.Load(flags, NoEnvironment()));

        Assert.Equal(["a.test", "b.test"], options.Upstreams.Select(u => u.Name));
        Assert.Equal(["https://a.test", "http://b.test:5000"], options.Upstreams.Select(u => u.Url));
        Assert.All(options.Upstreams, u => Assert.Empty(u.Aliases));
    }

    [Fact]
    public void Load_ConfigFileWithTwoUpstreams_ReplacesTheDefaultListWhole()
    {
        var flags = new ServeFlags { ConfigFile = WriteConfig(TwoUpstreamsFile) };

        var configuration = ConfigurationLoader.Load(flags, NoEnvironment());
        var options = Bind(configuration);

        Assert.Equal(["harbor.corp", "quay.io"], options.Upstreams.Select(u => u.Name));
        Assert.Equal("https://harbor.corp/dockerhub-proxy", options.Upstreams[0].Url);
        Assert.Empty(options.Upstreams[0].Aliases);
        Assert.Empty(configuration.GetSection("MirrorProxy:Upstreams:2").GetChildren());
        Assert.Null(configuration["MirrorProxy:Upstreams:0:Aliases:0"]);
        Assert.Equal("127.0.0.1:6000", options.Listen);
        Assert.Equal(TimeSpan.FromMinutes(5), options.TagTtl);
    }

    [Fact]
    public void Load_EnvironmentVariable_OverridesTheFile()
    {
        var flags = new ServeFlags { ConfigFile = WriteConfig(TwoUpstreamsFile) };
        var environment = new Dictionary<string, string?> { ["MIRRORPROXY__CACHE__PATH"] = "/from/env", ["PATH"] = "/usr/bin" };

        var options = Bind(ConfigurationLoader.Load(flags, environment));

        Assert.Equal("/from/env", options.Cache.Path);
        Assert.Equal(2, options.Upstreams.Count);
    }

    [Fact]
    public void Load_Flags_OverrideEnvironmentAndFile()
    {
        var flags = new ServeFlags { ConfigFile = WriteConfig(TwoUpstreamsFile), CacheDirectory = "/from/flag", Listen = ":7000" };
        var environment = new Dictionary<string, string?> { ["MIRRORPROXY__CACHE__PATH"] = "/from/env", ["MIRRORPROXY__LISTEN"] = ":6500" };

        var options = Bind(ConfigurationLoader.Load(flags, environment));

        Assert.Equal("/from/flag", options.Cache.Path);
        Assert.Equal(":7000", options.Listen);
    }

    [Fact]
    public void Load_EnvironmentUpstreams_ReplaceTheFileList()
    {
        var flags = new ServeFlags { ConfigFile = WriteConfig(TwoUpstreamsFile) };
        var environment = new Dictionary<string, string?>
        {
            ["MIRRORPROXY__UPSTREAMS__0__NAME"] = "env.test",
            ["MIRRORPROXY__UPSTREAMS__0__URL"] = "https://env.test",
        };

        var options = Bind(ConfigurationLoader.Load(flags, environment));

        var upstream = Assert.Single(options.Upstreams);
        Assert.Equal("env.test", upstream.Name);
    }

    [Fact]
    public void Load_LoggingEnvironmentVariable_ConfiguresLoggingNotTheMirrorSection()
    {
        var environment = new Dictionary<string, string?> { ["MIRRORPROXY__LOGGING__LOGLEVEL__DEFAULT"] = "Debug", ["OTHER__X"] = "y" };

        var configuration = ConfigurationLoader.Load(new ServeFlags(), environment);

        Assert.Equal("Debug", configuration["Logging:LogLevel:Default"]);
        Assert.Null(configuration["MirrorProxy:Logging:LogLevel:Default"]);
        Assert.Null(configuration["MirrorProxy:OTHER:X"]);
    }

    [Fact]
    public void Load_MissingConfigFile_MessageNamesTheConfigFlag()
    {
        var flags = new ServeFlags { ConfigFile = _temp.Combine("absent.json") };

        var ex = Assert.Throws<ConfigurationLoadException>(() => ConfigurationLoader.Load(flags, NoEnvironment()));

        Assert.StartsWith("--config:", ex.Message);
        Assert.Contains("absent.json", ex.Message);
    }

    [Fact]
    public void Load_ConfigFileNotJson_MessageNamesTheConfigFlag()
    {
        var flags = new ServeFlags { ConfigFile = WriteConfig("{ \"MirrorProxy\": { \"Listen\": ") };

        var ex = Assert.Throws<ConfigurationLoadException>(() => ConfigurationLoader.Load(flags, NoEnvironment()));

        Assert.StartsWith("--config:", ex.Message);
    }

    [Theory]
    [InlineData("bad")]
    [InlineData("=https://a.test")]
    [InlineData("a.test=")]
    public void Load_MalformedUpstreamFlag_MessageNamesTheUpstreamFlag(string pair)
    {
        var flags = new ServeFlags { Upstreams = [pair] };

        var ex = Assert.Throws<ConfigurationLoadException>(() => ConfigurationLoader.Load(flags, NoEnvironment()));

        Assert.StartsWith("--upstream:", ex.Message);
        Assert.Contains(pair, ex.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3600)]
    public void Load_TagTtlFlag_BindsThatManySeconds(int seconds)
    {
        var options = Bind(ConfigurationLoader.Load(new ServeFlags { TagTtlSeconds = seconds }, NoEnvironment()));

        Assert.Equal(TimeSpan.FromSeconds(seconds), options.TagTtl);
    }

    [Fact]
    public void Load_NegativeTagTtlFlag_MessageNamesTheFlag()
    {
        var ex = Assert.Throws<ConfigurationLoadException>(() => ConfigurationLoader.Load(new ServeFlags { TagTtlSeconds = -1 }, NoEnvironment()));

        Assert.StartsWith("--tag-ttl:", ex.Message);
    }

    [Fact]
    public void Load_OfflineFlag_SetsOfflineAndItsAbsenceKeepsTheConfiguredValue()
    {
        var configFile = WriteConfig("""{ "MirrorProxy": { "Offline": true } }""");

        Assert.True(Bind(ConfigurationLoader.Load(new ServeFlags { Offline = true }, NoEnvironment())).Offline);
        Assert.False(Bind(ConfigurationLoader.Load(new ServeFlags(), NoEnvironment())).Offline);
        Assert.True(Bind(ConfigurationLoader.Load(new ServeFlags { ConfigFile = configFile }, NoEnvironment())).Offline);
    }

    public void Dispose() => _temp.Dispose();

    private static Dictionary<string, string?> NoEnvironment() => [];

    private static Bound Bind(IConfiguration configuration)
    {
        var root = configuration.GetSection(ServerOptions.SectionName);
        return new Bound(
            root.Get<ServerOptions>() ?? new ServerOptions(), root.Get<UpstreamSetOptions>() ?? new UpstreamSetOptions(),
            root.Get<PullThroughOptions>() ?? new PullThroughOptions(), configuration.GetSection(CacheOptions.SectionName).Get<CacheOptions>() ?? new CacheOptions(),
            root.Get<OfflineOptions>() ?? new OfflineOptions());
    }

    /// <summary>The loaded configuration as the features bind it.</summary>
    private sealed record Bound(ServerOptions Server, UpstreamSetOptions UpstreamSet, PullThroughOptions PullThrough, CacheOptions Cache, OfflineOptions OfflineOptions)
    {
        public bool Offline => OfflineOptions.Offline;

        public List<UpstreamOptions> Upstreams => UpstreamSet.Upstreams;

        public string? DefaultUpstream => UpstreamSet.DefaultUpstream;

        public string Listen => Server.Listen;

        public TimeSpan TagTtl => PullThrough.TagTtl;

        public string LogFormat => Server.LogFormat;

        public bool AccessLog => Server.AccessLog;

        public TlsOptions Tls => Server.Tls;
    }

    private string WriteConfig(string json)
    {
        var path = _temp.Combine(Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Load_UpstreamFlagsOverAFileNamingADefaultUpstream_TheFirstFlagIsTheDefault()
    {
        var flags = new ServeFlags
        {
            ConfigFile = WriteConfig("""{ "MirrorProxy": { "DefaultUpstream": "ghcr.io" } }"""),
            Upstreams = ["a.test=https://a.test", "b.test=https://b.test"],
        };

        var options = Bind(ConfigurationLoader.Load(flags, NoEnvironment()));

        Assert.True(string.IsNullOrEmpty(options.DefaultUpstream), options.DefaultUpstream);
        Assert.True(new UpstreamSetOptionsValidator().Validate(null, options.UpstreamSet).Succeeded);
    }
}
