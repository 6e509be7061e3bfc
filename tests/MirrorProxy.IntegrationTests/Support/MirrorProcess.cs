using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.Support;

/// <summary>The real <c>mirrorproxy serve</c> program in its own process, so that tests can kill -9 it.</summary>
internal sealed class MirrorProcess : IAsyncDisposable
{
    private readonly RunningProcess _process;

    private MirrorProcess(RunningProcess process, Uri baseUri)
    {
        _process = process;
        BaseUri = baseUri;
        Client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseUri { get; }

    public HttpClient Client { get; }

    public OutputBuffer Output => _process.Output;

    /// <summary>The program's process id (for <c>/proc/&lt;pid&gt;/status</c>).</summary>
    public int Id => _process.Id;

    /// <summary>
    /// Starts the program built with the tests, or the one <c>MIRRORPROXY_TEST_PROGRAM</c> names (a Native AOT
    /// build, say), so that the same tests can be run against any build of the program.
    /// </summary>
    public static Task<MirrorProcess> StartAsync(string cacheDirectory, IEnumerable<string> arguments) => StartAsync(cacheDirectory, arguments, environment: null);

    /// <summary>As <see cref="StartAsync(string, IEnumerable{string})"/>, with environment variables set (or removed, for null values).</summary>
    public static Task<MirrorProcess> StartAsync(string cacheDirectory, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment) =>
        Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } program
            ? StartAsync(program, [], cacheDirectory, arguments, TimeSpan.FromSeconds(30), environment)
            : StartAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll")], cacheDirectory, arguments, TimeSpan.FromSeconds(30), environment);

    /// <summary>As <see cref="StartAsync(string, IEnumerable{string})"/>, started in <paramref name="workingDirectory"/>.</summary>
    public static Task<MirrorProcess> StartInAsync(string workingDirectory, string cacheDirectory, IEnumerable<string> arguments) =>
        Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } program
            ? StartAsync(program, [], cacheDirectory, arguments, TimeSpan.FromSeconds(30), workingDirectory: workingDirectory)
            : StartAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll")], cacheDirectory, arguments, TimeSpan.FromSeconds(30), workingDirectory: workingDirectory);

    /// <summary>Runs one of the program's other commands (<c>verify</c>, <c>check</c>...) to completion, with the same build as <see cref="StartAsync(string, IEnumerable{string})"/>.</summary>
    public static Task<ProcessResult> RunCommandAsync(IEnumerable<string> arguments, TimeSpan timeout) =>
        Environment.GetEnvironmentVariable("MIRRORPROXY_TEST_PROGRAM") is { Length: > 0 } program
            ? ProcessRunner.RunAsync(program, arguments, timeout, CancellationToken.None)
            : ProcessRunner.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "mirrorproxy.dll"), .. arguments], timeout, CancellationToken.None);

    /// <summary>Starts <c><paramref name="launcher"/> <paramref name="program"/> serve …</c> (an emulator and a foreign build, say).</summary>
    public static async Task<MirrorProcess> StartAsync(
        string launcher, IEnumerable<string> program, string cacheDirectory, IEnumerable<string> arguments, TimeSpan startupTimeout,
        IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        // The port is free when it is handed out; should another listener take it before the program binds, take another.
        for (var attempt = 1; ; attempt++)
        {
            var port = LoopbackPorts.GetFreePort();
            var process = ProcessRunner.Start(launcher, [.. program, "serve", "--listen", $"127.0.0.1:{port}", "--cache", cacheDirectory, .. arguments],
                environment is null && workingDirectory is null ? null : new ProcessRunOptions { Environment = environment, WorkingDirectory = workingDirectory });
            var mirror = new MirrorProcess(process, new Uri($"http://127.0.0.1:{port}"));
            var deadline = DateTime.UtcNow + startupTimeout;
            while (true)
            {
                try
                {
                    using var health = await mirror.Client.GetAsync("/healthz");
                    if (health.IsSuccessStatusCode)
                    {
                        return mirror;
                    }
                }
                catch (HttpRequestException)
                {
                }

                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    var output = process.Output.Tail(40);
                    await mirror.DisposeAsync();
                    if (attempt < 3 && output.Contains("address already in use", StringComparison.Ordinal))
                    {
                        break;
                    }

                    throw new InvalidOperationException($"mirrorproxy did not start on port {port}:{Environment.NewLine}{output}");
                }

                await Task.Delay(100);
            }
        }
    }

    /// <summary>The start-up line that says how the program runs (architecture, JIT or Native AOT, GC).</summary>
    public async Task<string> RuntimeLineAsync() =>
        (await Output.WaitForLineAsync(line => line.Text.Contains("Running on", StringComparison.Ordinal), TimeSpan.FromSeconds(30), CancellationToken.None)).Text;

    /// <summary>SIGKILL: no shutdown code runs, as in a power cut.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary>SIGTERM: the graceful path (final index checkpoint).</summary>
    public Task StopAsync() => _process.StopAsync(TimeSpan.FromSeconds(20));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _process.DisposeAsync();
    }
}
