using System.Globalization;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>A content-store entry. ctr only prints humanized sizes ("3.318MB"), so the size is approximate (use <see cref="ContainerdDaemon.GetContentAsync"/> for bytes).</summary>
internal sealed record ContainerdContent(string Digest, long ApproximateSize, IReadOnlyDictionary<string, string> Labels);

internal sealed record ContainerdImage(string Reference, string MediaType, string Digest);

/// <summary>
/// A private containerd 1.6 (own root/state/socket under a short /tmp/ctd-XXXXXXXX dir, CRI disabled) driven with <c>ctr</c>.
/// </summary>
internal sealed class ContainerdDaemon : IAsyncDisposable
{
    public const string Namespace = "test";

    private static readonly TimeSpan s_ctrTimeout = TimeSpan.FromSeconds(30);

    private readonly ShortTempDirectory _directory;
    private RunningProcess? _process;

    private ContainerdDaemon(ShortTempDirectory directory)
    {
        _directory = directory;
        SocketPath = directory.Combine("c.sock");
    }

    public string SocketPath { get; }

    public string RootDirectory => _directory.Path;

    /// <summary>containerd's own log (stderr), for diagnostics.</summary>
    public OutputBuffer Log { get; } = new();

    /// <summary>Starts containerd and waits (bounded) until <c>ctr version</c> answers.</summary>
    public static async Task<ContainerdDaemon> StartAsync(CancellationToken cancellationToken = default)
    {
        var daemon = new ContainerdDaemon(ShortTempDirectory.Create("ctd-"));
        try
        {
            var configPath = daemon._directory.Combine("config.toml");
            await File.WriteAllTextAsync(configPath, daemon.BuildConfig(), cancellationToken).ConfigureAwait(false);
            daemon._process = ProcessRunner.Start("containerd", ["--config", configPath], output: daemon.Log);
            await daemon.WaitUntilReadyAsync(TimeSpan.FromSeconds(20), cancellationToken).ConfigureAwait(false);
            return daemon;
        }
        catch
        {
            await daemon.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Writes <c>&lt;hostsDir&gt;/&lt;registryNamespace&gt;/hosts.toml</c> with one plain-http mirror host (capabilities pull+resolve).
    /// With <paramref name="mirrorOnly"/> the fallback <c>server</c> is the unreachable <c>http://127.0.0.1:1</c>, so every byte
    /// must come through the mirror (containerd adds <c>?ns=&lt;registryNamespace&gt;</c> to mirror requests).
    /// Without it, <paramref name="upstreamServer"/> (a loopback URL) is the fallback server and is required.
    /// </summary>
    public static string WriteHostsToml(string hostsDir, string registryNamespace, Uri mirror, bool mirrorOnly, Uri? upstreamServer = null)
    {
        if (!mirrorOnly && upstreamServer is null)
        {
            throw new ArgumentException("Without mirrorOnly an explicit (loopback) upstreamServer is required; the default would be https://" + registryNamespace, nameof(upstreamServer));
        }

        var server = mirrorOnly ? "http://127.0.0.1:1" : upstreamServer!.GetLeftPart(UriPartial.Authority);
        var mirrorHost = mirror.GetLeftPart(UriPartial.Authority);
        var directory = Path.Combine(hostsDir, registryNamespace);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "hosts.toml");
        File.WriteAllText(path, $"""
            server = "{server}"

            [host."{mirrorHost}"]
              capabilities = ["pull", "resolve"]

            """);
        return path;
    }

    /// <summary>
    /// <c>ctr images pull --hosts-dir &lt;dir&gt; --snapshotter native [--platform p | --all-platforms] &lt;ref&gt;</c>
    /// (fetches and unpacks). <paramref name="platform"/>: null = host platform, "all" = every platform in the index.
    /// Not-successful results are returned, not thrown; call <see cref="ProcessResult.EnsureSuccess"/>.
    /// </summary>
    public Task<ProcessResult> PullAsync(string reference, string hostsDir, string? platform, CancellationToken cancellationToken = default)
        => PullAsync(reference, hostsDir, platform, credentials: null, timeout: null, cancellationToken);

    /// <summary>As above, with <c>--user user:pass</c> and a custom bound (default 120 s).</summary>
    public Task<ProcessResult> PullAsync(string reference, string hostsDir, string? platform, RegistryCredentials? credentials, TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var args = new List<string> { "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native" };
        if (string.Equals(platform, "all", StringComparison.OrdinalIgnoreCase))
        {
            args.Add("--all-platforms");
        }
        else if (platform is not null)
        {
            args.Add("--platform");
            args.Add(platform);
        }

        if (credentials is not null)
        {
            args.Add("--user");
            args.Add(credentials.UserColonPassword);
        }

        args.Add(reference);
        return RunCtrAsync(args, timeout ?? TimeSpan.FromSeconds(120), cancellationToken);
    }

    /// <summary><c>ctr content ls</c>, parsed.</summary>
    public async Task<IReadOnlyList<ContainerdContent>> ListContentAsync(CancellationToken cancellationToken = default)
    {
        var result = (await RunCtrAsync(["content", "ls"], cancellationToken).ConfigureAwait(false)).EnsureSuccess();
        var entries = new List<ContainerdContent>();
        foreach (var line in result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1))
        {
            // "DIGEST\tSIZE\tAGE\tLABELS", tab separated (AGE contains spaces, e.g. "Less than a second"),
            // SIZE humanized ("568B", "2.202kB", "3.318MB"); labels "k=v,k=v".
            var columns = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (columns.Length < 2 || !columns[0].StartsWith("sha256:", StringComparison.Ordinal))
            {
                continue;
            }

            var labels = new Dictionary<string, string>();
            if (columns.Length >= 4)
            {
                foreach (var pair in columns[3].Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq > 0)
                    {
                        labels[pair[..eq]] = pair[(eq + 1)..];
                    }
                }
            }

            entries.Add(new ContainerdContent(columns[0], ParseHumanSize(columns[1]), labels));
        }

        return entries;
    }

    /// <summary>Exact bytes of a content-store blob (<c>ctr content get</c>).</summary>
    public async Task<byte[]> GetContentAsync(string digest, CancellationToken cancellationToken = default)
        => (await RunCtrAsync(["content", "get", digest], TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false)).EnsureSuccess().StandardOutputBytes;

    /// <summary><c>ctr images ls</c>, parsed.</summary>
    public async Task<IReadOnlyList<ContainerdImage>> ListImagesAsync(CancellationToken cancellationToken = default)
    {
        var result = (await RunCtrAsync(["images", "ls"], cancellationToken).ConfigureAwait(false)).EnsureSuccess();
        var images = new List<ContainerdImage>();
        foreach (var line in result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1))
        {
            // "REF TYPE DIGEST SIZE PLATFORMS LABELS", space padded; SIZE contains a space ("3.5 MiB"), the first three never do.
            var columns = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (columns.Length >= 3)
            {
                images.Add(new ContainerdImage(columns[0], columns[1], columns[2]));
            }
        }

        return images;
    }

    /// <summary><c>ctr images rm --sync &lt;ref&gt;</c>: removes the image and synchronously garbage-collects its content and snapshots.</summary>
    public Task<ProcessResult> RemoveImageAsync(string reference, CancellationToken cancellationToken = default)
        => RunCtrAsync(["images", "rm", "--sync", reference], cancellationToken);

    /// <summary>Runs <c>ctr --address &lt;sock&gt; --namespace test &lt;args&gt;</c> (bounded by 30 s).</summary>
    public Task<ProcessResult> RunCtrAsync(IEnumerable<string> args, CancellationToken cancellationToken = default)
        => RunCtrAsync(args, s_ctrTimeout, cancellationToken);

    public Task<ProcessResult> RunCtrAsync(IEnumerable<string> args, TimeSpan timeout, CancellationToken cancellationToken = default)
        => ProcessRunner.RunAsync("ctr", ["--address", SocketPath, "--namespace", Namespace, .. args], timeout, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            await process.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            await process.DisposeAsync().ConfigureAwait(false);
        }

        await UnmountLeftoversAsync().ConfigureAwait(false);
        _directory.Dispose();
    }

    public override string ToString() => $"containerd at {SocketPath}";

    private async Task WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutCts = new CancellationTokenSource(timeout);
        using var linkedCts = CancellationTokenSource.CreateLinkedTokenSource(timeoutCts.Token, cancellationToken);
        var last = "no attempt made";
        try
        {
            while (true)
            {
                if (_process is { HasExited: true })
                {
                    throw new InvalidOperationException($"containerd exited early. Log:{Environment.NewLine}{Log.Tail(60)}");
                }

                if (File.Exists(SocketPath))
                {
                    var result = await ProcessRunner.RunAsync("ctr", ["--address", SocketPath, "version"], TimeSpan.FromSeconds(5), linkedCts.Token).ConfigureAwait(false);
                    if (result.Succeeded)
                    {
                        return;
                    }

                    last = result.Describe();
                }

                await Task.Delay(100, linkedCts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"containerd not ready within {timeout.TotalSeconds:F0}s. Last ctr attempt: {last}{Environment.NewLine}Log:{Environment.NewLine}{Log.Tail(60)}");
        }
    }

    private string BuildConfig()
    {
        var d = _directory.Path;
        return $"""
            version = 2
            root = "{d}/root"
            state = "{d}/state"
            # Only content store, metadata, native snapshotter, differ and the image/content/snapshot services are needed.
            disabled_plugins = [
              "io.containerd.grpc.v1.cri",
              "io.containerd.snapshotter.v1.btrfs",
              "io.containerd.snapshotter.v1.zfs",
              "io.containerd.snapshotter.v1.devmapper",
              "io.containerd.snapshotter.v1.aufs",
              "io.containerd.internal.v1.tracing",
              "io.containerd.tracing.processor.v1.otlp",
            ]

            [grpc]
              address = "{d}/c.sock"

            [ttrpc]
              address = "{d}/c.sock.ttrpc"

            [debug]
              address = ""
              level = "info"

            [metrics]
              address = ""

            [plugins."io.containerd.internal.v1.opt"]
              path = "{d}/opt"

            """;
    }

    /// <summary>The native snapshotter only bind-mounts transiently during unpack; anything left under our dir is unmounted before deletion.</summary>
    private async Task UnmountLeftoversAsync()
    {
        string[] mountInfo;
        try
        {
            mountInfo = await File.ReadAllLinesAsync("/proc/self/mountinfo").ConfigureAwait(false);
        }
        catch (IOException)
        {
            return;
        }

        var prefix = _directory.Path + "/";
        var mountPoints = mountInfo
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 4)
            .Select(f => f[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(m => m.StartsWith(prefix, StringComparison.Ordinal))
            .OrderByDescending(m => m.Length)
            .ToArray();
        foreach (var mountPoint in mountPoints)
        {
            await ProcessRunner.RunAsync("umount", ["-l", mountPoint], TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static long ParseHumanSize(string text)
    {
        // ctr prints sizes like "1.2kB", "3.0MiB", "512B" (go-units HumanSize / BytesSize).
        var number = new StringBuilder();
        var i = 0;
        for (; i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'); i++)
        {
            number.Append(text[i]);
        }

        if (!double.TryParse(number.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            return -1;
        }

        var multiplier = text[i..] switch
        {
            "B" or "" => 1d,
            "kB" or "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024d,
            "MiB" => 1024d * 1024,
            "GiB" => 1024d * 1024 * 1024,
            _ => double.NaN,
        };
        return double.IsNaN(multiplier) ? -1 : (long)(value * multiplier);
    }
}
