using System.CommandLine;
using MirrorProxy.Cli;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>The program's commands as a user meets them: exit codes and messages.</summary>
public sealed class CliTests : IDisposable
{
    private readonly TempDirectory _work = new("cli");

    public void Dispose() => _work.Dispose();

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await MirrorProxyCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Health_ZeroForARunningMirror_OneWhenNothingAnswers()
    {
        await using var mirror = await MirrorServer.StartAsync(_work.Combine("cache"), [("docker.io", new Uri("http://127.0.0.1:1"))]);

        Assert.Equal(0, (await RunAsync("health", "--url", new Uri(mirror.BaseUri, "/healthz").ToString())).ExitCode);
        Assert.Equal(1, (await RunAsync("health", "--url", $"http://127.0.0.1:{LoopbackPortThatIsClosed()}/healthz")).ExitCode);
    }

    /// <summary>
    /// Run as the README says, from a directory with the cache beneath it and 2,000 other directories (a home, /tmp),
    /// the program watches no directory. A watch on the working directory is an inotify watch on every directory
    /// under it, each added before the mirror serves (this one took 1.7 s of a 2.7 s start in a /tmp of 6,000
    /// entries), and a large enough tree runs into the system's limit on watches.
    /// </summary>
    [Fact]
    public async Task Serve_FromADirectoryAboveManyOthers_WatchesNoDirectory()
    {
        var cache = _work.Combine("mirrorproxy-cache");
        for (var i = 0; i < 2_000; i++)
        {
            Directory.CreateDirectory(Path.Combine(_work.Path, "projects", (i % 40).ToString("x2", System.Globalization.CultureInfo.InvariantCulture), i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        await using var mirror = await MirrorProcess.StartInAsync(_work.Path, cache, ["--upstream", "docker.io=http://127.0.0.1:1"]);
        using (var ready = await mirror.Client.GetAsync("/readyz"))
        {
            Assert.True(ready.IsSuccessStatusCode, $"/readyz answered {(int)ready.StatusCode}");
        }

        Assert.Equal(0, InotifyWatches(mirror.Id));
    }

    /// <summary>How many inotify watches a process holds, from the <c>inotify wd:</c> lines of its inotify descriptors.</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
        {
            if (new FileInfo(fd).LinkTarget == "anon_inode:inotify")
            {
                watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(line => line.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
        }

        return watches;
    }

    [Theory]
    [InlineData(new[] { "--listen", "mirror:5000" }, "MirrorProxy:Listen")]
    [InlineData(new[] { "--upstream", "docker.io=ftp://registry" }, "MirrorProxy:Upstreams:0:Url")]
    [InlineData(new[] { "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key" }, "MirrorProxy:Tls:CertificateFile")]
    [InlineData(new[] { "--upstream-ca", "nope.io=/x.crt" }, "--upstream-ca")]
    [InlineData(new[] { "--max-cache-size", "lots" }, "--max-cache-size")]
    [InlineData(new[] { "--config", "/nonexistent.json" }, "--config")]
    public async Task Serve_BadConfiguration_FailsAtStartNamingTheKey(string[] flags, string key)
    {
        var (exit, _, error) = await RunAsync(["serve", "--cache", _work.Combine("cache"), .. flags]);

        Assert.Equal(2, exit);
        Assert.Contains(key, error, StringComparison.Ordinal);
    }

    private static int LoopbackPortThatIsClosed()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
