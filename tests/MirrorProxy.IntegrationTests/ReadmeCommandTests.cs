using System.Text.RegularExpressions;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>
/// The README's first command, <c>dotnet run --project src/MirrorProxy -c Release -- serve</c>, does what its
/// comment and the README say: it runs where it is typed, so <c>./appsettings.json</c> there is read and the
/// cache is <c>./mirrorproxy-cache</c> there (git-ignored), not under <c>src/MirrorProxy</c>.
/// </summary>
public sealed partial class ReadmeCommandTests : IDisposable
{
    private readonly TempDirectory _work = new("readme");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task FirstCommand_RunsInTheDirectoryItIsTypedIn_ReadsAppsettingsThere_AndKeepsItsCacheThere()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot.Path, "README.md"));
        var command = FirstCommand().Match(readme);
        Assert.True(command.Success, "the README starts with the dotnet run command");
        Assert.Equal("dotnet run --project src/MirrorProxy -c Release -- serve", command.Groups[1].Value.Trim());
        Assert.Contains("./mirrorproxy-cache", command.Groups[2].Value, StringComparison.Ordinal);

        var projectCache = Path.Combine(RepositoryRoot.Path, "src", "MirrorProxy", "mirrorproxy-cache");
        var existedBefore = Directory.Exists(projectCache);
        await File.WriteAllTextAsync(_work.Combine("appsettings.json"), """{ "MirrorProxy": { "Upstreams": [ { "Name": "from-appsettings.test", "Url": "http://127.0.0.1:9" } ] } }""");
        var port = LoopbackPorts.GetFreePort();
        // As typed, with --no-build (scripts/test.sh has built Release) and a free port instead of 5000.
        await using var process = ProcessRunner.Start("dotnet",
            ["run", "--project", Path.Combine(RepositoryRoot.Path, "src", "MirrorProxy"), "-c", "Release", "--no-build", "--", "serve", "--listen", $"127.0.0.1:{port}"],
            new ProcessRunOptions { WorkingDirectory = _work.Path });
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        await Eventually.TrueAsync(async () =>
        {
            Assert.False(process.HasExited, process.Output.Tail(30));
            try
            {
                using var health = await client.GetAsync("/healthz");
                return health.IsSuccessStatusCode;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or still starting (JIT) on a busy machine: ask again.
                return false;
            }
        }, TimeSpan.FromSeconds(90), "the mirror answers /healthz");

        Assert.Contains("from-appsettings.test", await client.GetStringAsync("/admin/upstreams"), StringComparison.Ordinal);
        Assert.True(Directory.Exists(_work.Combine("mirrorproxy-cache", "tmp")), "the cache is ./mirrorproxy-cache where the command was typed");
        Assert.Equal(existedBefore, Directory.Exists(projectCache));

        var ignored = await ProcessRunner.RunAsync("git", ["-C", RepositoryRoot.Path, "check-ignore", "-q", "mirrorproxy-cache/blobs"], TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.True(ignored.ExitCode == 0, "mirrorproxy-cache/ at the repository root is git-ignored: " + ignored.Describe());
    }

    [GeneratedRegex(@"^    (dotnet run [^#\n]*)#([^\n]*)$", RegexOptions.Multiline)]
    private static partial Regex FirstCommand();
}
