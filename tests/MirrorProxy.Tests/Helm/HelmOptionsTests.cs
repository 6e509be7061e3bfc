using Microsoft.Extensions.Configuration;
using MirrorProxy.Cli;
using MirrorProxy.Helm;
using MirrorProxy.Tests.Support;

namespace MirrorProxy.Tests.Helm;

public sealed class HelmOptionsTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private static HelmOptions Bind(IConfiguration configuration)
    {
        var options = new HelmOptions();
        configuration.GetSection("MirrorProxy").Bind(options);
        return options;
    }

    private static IReadOnlyList<string> Validate(HelmOptions options) =>
        new HelmOptionsValidator().Validate(null, options) is { Failed: true } result ? [.. result.Failures] : [];

    [Fact]
    public void HelmRepoFlags_ReplaceTheConfiguredRepositoriesWhole()
    {
        var file = Path.Combine(_temp.Path, "mirror.json");
        File.WriteAllText(file, """
            { "MirrorProxy": { "HelmOfflineIndex": "held", "HelmRepositories": [
              { "Name": "one", "Url": "https://one.test/charts", "IndexTtl": "00:10:00" },
              { "Name": "two", "Url": "https://two.test" } ] } }
            """);

        var fromFile = Bind(ConfigurationLoader.Load(new ServeFlags { ConfigFile = file }, new Dictionary<string, string?>()));
        var fromFlags = Bind(ConfigurationLoader.Load(new ServeFlags { ConfigFile = file, HelmRepositories = ["jetstack=https://charts.jetstack.io"] }, new Dictionary<string, string?>()));

        Assert.Equal(HelmOfflineIndex.Held, fromFile.HelmOfflineIndex);
        Assert.Equal([("one", "https://one.test/charts", TimeSpan.FromMinutes(10)), ("two", "https://two.test", TimeSpan.FromMinutes(5))],
            fromFile.HelmRepositories.Select(r => (r.Name, r.Url, r.IndexTtl)));
        Assert.Equal([("jetstack", "https://charts.jetstack.io")], fromFlags.HelmRepositories.Select(r => (r.Name, r.Url)));
        Assert.Empty(Validate(fromFlags));
        Assert.Throws<ConfigurationLoadException>(() => ConfigurationLoader.Load(new ServeFlags { HelmRepositories = ["no-url"] }, new Dictionary<string, string?>()));
    }

    [Fact]
    public void Validation_NamesTheKey_AndNeverPrintsAPassword()
    {
        var options = new HelmOptions
        {
            HelmRepositories =
            [
                new HelmRepositoryOptions { Name = "Upper", Url = "https://a.test" },
                new HelmRepositoryOptions { Name = "dup", Url = "ftp://a.test" },
                new HelmRepositoryOptions { Name = "dup", Url = "https://user:s3cret@a.test" },
                new HelmRepositoryOptions { Name = "pw", Url = "https://a.test", Password = "s3cret", PasswordFile = "/nonexistent", IndexTtl = TimeSpan.FromSeconds(-1) },
                new HelmRepositoryOptions { Name = "ca", Url = "https://a.test", CaFile = "/nonexistent/ca.crt" },
            ],
        };

        var failures = Validate(options);

        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:HelmRepositories:0:Name: 'Upper' is not a repository name", StringComparison.Ordinal));
        Assert.Contains("MirrorProxy:HelmRepositories:1:Url: not an absolute http:// or https:// URL", failures);
        Assert.Contains("MirrorProxy:HelmRepositories:2:Name: the name 'dup' is used by two Helm repositories", failures);
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:HelmRepositories:2:Url: must not carry credentials", StringComparison.Ordinal));
        Assert.Contains("MirrorProxy:HelmRepositories:3: set Password or PasswordFile, not both", failures);
        Assert.Contains("MirrorProxy:HelmRepositories:3:Username: required when a password is set", failures);
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:HelmRepositories:3:IndexTtl: must not be negative", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("MirrorProxy:HelmRepositories:4:CaFile: cannot read", StringComparison.Ordinal));
        Assert.DoesNotContain(failures, f => f.Contains("s3cret", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("https://charts.example.com", "alpha-1.0.0.tgz", "https://charts.example.com/alpha-1.0.0.tgz")]
    [InlineData("https://charts.example.com/sub/", "alpha-1.0.0.tgz", "https://charts.example.com/sub/alpha-1.0.0.tgz")]
    [InlineData("https://charts.example.com/sub?token=1", "pkg/alpha-1.0.0.tgz", "https://charts.example.com/sub/pkg/alpha-1.0.0.tgz?token=1")]
    [InlineData("https://charts.example.com/sub", "https://other.example.com/x/alpha-1.0.0.tgz", "https://other.example.com/x/alpha-1.0.0.tgz")]
    [InlineData("https://charts.example.com/sub", "/root/alpha-1.0.0.tgz", "https://charts.example.com/root/alpha-1.0.0.tgz")]
    public void ChartUrls_ResolveAsHelmResolvesThem(string repository, string url, string expected)
    {
        using var repo = new HelmRepository(new HelmRepositoryOptions { Name = "r", Url = repository }, new HttpMessageInvoker(new HttpClientHandler()),
            new MirrorProxy.Resilience.OfflineMode(false), new MirrorProxy.Common.BackgroundWork(Microsoft.Extensions.Logging.Abstractions.NullLogger<MirrorProxy.Common.BackgroundWork>.Instance),
            TestMetrics.Create(), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);

        Assert.Equal(expected, repo.Resolve(url)!.AbsoluteUri);
        Assert.Equal($"charts/alpha/1.0.0/alpha-1.0.0.tgz", HelmIndexService.MirrorPath("alpha", "1.0.0", repo.Resolve(url)!));
    }

    public void Dispose() => _temp.Dispose();
}
