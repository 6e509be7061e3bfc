using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

internal sealed class CephRgwOptions
{
    /// <summary>Size of the OSD's block file; sparse, so only what is written takes disk space.</summary>
    public long OsdSizeBytes { get; init; } = 8L * 1024 * 1024 * 1024;

    /// <summary>Bound for one attempt at bringing the cluster up, from an empty directory to a working S3 user.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(150);

    /// <summary>How many times a cluster is brought up from scratch (new directory, new ports) before giving up.</summary>
    public int Attempts { get; init; } = 2;

    /// <summary>Bound for RGW answering HTTP after <see cref="CephRgw.StartRgwAsync"/> on existing pools.</summary>
    public TimeSpan RgwRestartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// A single-host Ceph cluster serving S3 on 127.0.0.1: one monitor (msgr2 only, on a free loopback port), one bluestore
/// OSD on a sparse file, pools of size 1, cephx, and radosgw (beast) on another free loopback port, with one S3 user.
/// Everything (ceph.conf, keyrings, monitor store, OSD block file, sockets, logs) lives in one directory named after the
/// test run; nothing under /etc/ceph or /var/lib/ceph is read or written, so several runs on one machine do not meet.
/// The daemons run in the foreground as children of the test process; exactly their PIDs are stopped.
/// </summary>
internal sealed class CephRgw : IAsyncDisposable
{
    public const string NameKind = "ceph";

    /// <summary>The region the S3 user signs for; RGW's default zone group takes any.</summary>
    public const string Region = "us-east-1";

    private const string MonId = "a";
    private const string RgwName = "client.rgw.a";
    private const string Bin = "/usr/bin";

    private static readonly string[] s_tools = ["ceph-authtool", "monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin"];
    private static readonly TimeSpan s_toolTimeout = TimeSpan.FromSeconds(60);
    private static readonly HttpClient s_probe = new(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(2) })
    {
        Timeout = TimeSpan.FromSeconds(5),
        DefaultRequestHeaders = { { "User-Agent", "mirrorproxy-tests/rgw-probe" } },
    };

    private readonly CephRgwOptions _options;
    private readonly List<string> _steps = [];
    private EngineDaemon? _mon;
    private EngineDaemon? _osd;
    private EngineDaemon? _rgw;
    private string _step = "prepare";
    private int _osdId;
    private int _disposed;

    private CephRgw(string directory, CephRgwOptions options)
    {
        DirectoryPath = directory;
        _options = options;
        ConfigPath = Path.Combine(directory, "ceph.conf");
    }

    /// <summary><c>http://127.0.0.1:PORT/</c>; path-style bucket addressing.</summary>
    public Uri Endpoint => new($"http://127.0.0.1:{RgwPort.ToString(CultureInfo.InvariantCulture)}/");

    public int RgwPort { get; private set; }

    public int MonitorPort { get; private set; }

    public string UserId { get; } = "mirrorproxy-test";

    public string AccessKey { get; private set; } = "";

    public string SecretKey { get; private set; } = "";

    /// <summary>The directory holding everything of this cluster; deleted at dispose.</summary>
    public string DirectoryPath { get; }

    /// <summary>The cluster's own ceph.conf: <c>ceph -c &lt;ConfigPath&gt; -s</c> talks to it.</summary>
    public string ConfigPath { get; }

    /// <summary>From the call to <see cref="StartAsync"/> to a working S3 user, all attempts included.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>How many attempts the start took (1 when nothing had to be retried).</summary>
    public int StartAttempts { get; private set; }

    /// <summary>One line with the time each step of the successful attempt took, and what failed before it, if anything.</summary>
    public string StartupReport { get; private set; } = "";

    public bool IsRgwRunning => _rgw is { HasExited: false };

    /// <summary>The PIDs of the daemons this instance started and that are still running.</summary>
    public IReadOnlyList<int> DaemonProcessIds => new[] { _mon, _osd, _rgw }.Where(d => d is { HasExited: false }).Select(d => d!.Id).ToArray();

    /// <summary>Brings a new cluster up; retries from scratch (bounded by <see cref="CephRgwOptions.Attempts"/>) when an attempt fails.</summary>
    public static async Task<CephRgw> StartAsync(CephRgwOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new CephRgwOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Attempts, 1);
        var missing = s_tools.Where(tool => !File.Exists(Path.Combine(Bin, tool))).ToArray();
        if (missing.Length > 0)
        {
            throw new EngineStartException(
                $"Ceph is not installed: {string.Join(", ", missing)} not found in {Bin}. Install the Debian packages ceph-mon, ceph-osd, radosgw and ceph-common (scripts/test.sh does).");
        }

        await EngineLeftovers.RemoveOnceAsync(cancellationToken).ConfigureAwait(false);
        var stopwatch = Stopwatch.StartNew();
        var failures = new List<string>();
        for (var attempt = 1; ; attempt++)
        {
            var directory = Path.Combine(EngineLeftovers.BaseDirectory, TestRunNames.Next(NameKind));
            Directory.CreateDirectory(directory);
            var cluster = new CephRgw(directory, options);
            using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attemptCts.CancelAfter(options.AttemptTimeout);
            try
            {
                await cluster.BringUpAsync(attemptCts.Token).ConfigureAwait(false);
                cluster.StartupTime = stopwatch.Elapsed;
                cluster.StartAttempts = attempt;
                cluster.StartupReport = $"Ceph RGW at {cluster.Endpoint} up in {cluster.StartupTime.TotalSeconds:F1} s "
                    + $"(attempt {attempt}: {string.Join(", ", cluster._steps)})"
                    + (failures.Count > 0 ? $"; earlier attempts failed: {string.Join(" | ", failures.Select(f => f.Split('\n')[0]))}" : "");
                return cluster;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                var reason = ex is OperationCanceledException
                    ? $"step '{cluster._step}' did not finish within the attempt's {options.AttemptTimeout.TotalSeconds:F0} s"
                    : $"step '{cluster._step}' failed: {ex.Message}";
                failures.Add($"attempt {attempt} ({cluster.DirectoryPath}): {reason}{System.Environment.NewLine}{cluster.DaemonTails()}");
                await cluster.DisposeAsync().ConfigureAwait(false);
                if (attempt >= options.Attempts)
                {
                    throw new EngineStartException(
                        $"Could not bring up Ceph RGW in {attempt} attempt(s), {stopwatch.Elapsed.TotalSeconds:F1} s:{System.Environment.NewLine}{string.Join(System.Environment.NewLine, failures)}",
                        ex);
                }
            }
            catch
            {
                await cluster.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>A signing S3 client for this cluster's user. Caller disposes.</summary>
    public S3TestClient CreateClient() => new(Endpoint, AccessKey, SecretKey, Region);

    /// <summary>Stops radosgw (SIGTERM, then SIGKILL): the S3 endpoint refuses connections until <see cref="StartRgwAsync"/>.</summary>
    public async Task StopRgwAsync(CancellationToken cancellationToken = default)
    {
        var rgw = _rgw;
        _rgw = null;
        if (rgw is not null)
        {
            await rgw.StopAsync(cancellationToken).ConfigureAwait(false);
            await rgw.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Starts radosgw again on the same port and waits until it answers HTTP; the data kept in RADOS is all there.</summary>
    public async Task StartRgwAsync(CancellationToken cancellationToken = default)
    {
        if (_rgw is not null)
        {
            throw new InvalidOperationException("radosgw is still running; call StopRgwAsync first.");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RgwRestartTimeout);
        try
        {
            _step = "restart radosgw";
            _rgw = StartRgwDaemon();
            await WaitForRgwAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EngineStartException($"radosgw did not answer on {Endpoint} within {_options.RgwRestartTimeout.TotalSeconds:F0} s after a restart.{System.Environment.NewLine}{DaemonTails()}");
        }
    }

    /// <summary>Runs <c>radosgw-admin</c> against this cluster (e.g. <c>bucket stats</c>, <c>object rm</c>), bounded in time; does not throw on failure.</summary>
    public Task<ProcessResult> RunRadosgwAdminAsync(IEnumerable<string> arguments, CancellationToken cancellationToken = default)
        => RunAsync("radosgw-admin", ["-c", ConfigPath, .. arguments], cancellationToken);

    /// <summary>The last lines of each daemon's log file and output.</summary>
    public string DaemonTails(int lineCount = 30)
    {
        var builder = new StringBuilder();
        foreach (var daemon in new[] { _mon, _osd, _rgw })
        {
            if (daemon is not null)
            {
                builder.Append(daemon.Tail(lineCount));
            }
        }

        return builder.Length == 0 ? "(no daemon was started)" : builder.ToString();
    }

    public override string ToString() => $"Ceph RGW {Endpoint} (mon 127.0.0.1:{MonitorPort}, {DirectoryPath})";

    /// <summary>Stops radosgw, the OSD and the monitor, in that order (SIGTERM, then SIGKILL), and deletes the directory.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // In this order: radosgw finishes its RADOS operations while the OSD is there (without it, it waits out the
        // grace period), and the OSD reports its shutdown to the monitor.
        await StopAsync(_rgw).ConfigureAwait(false);
        await StopAsync(_osd).ConfigureAwait(false);
        await StopAsync(_mon).ConfigureAwait(false);
        ShortTempDirectory.DeleteBestEffort(DirectoryPath);

        static async Task StopAsync(EngineDaemon? daemon)
        {
            if (daemon is not null)
            {
                await daemon.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private string Combine(params string[] parts) => Path.Combine([DirectoryPath, .. parts]);

    private async Task BringUpAsync(CancellationToken cancellationToken)
    {
        foreach (var directory in new[] { "run", "log", "mon", "osd", "rgw", "crash", "keyring" })
        {
            Directory.CreateDirectory(Combine(directory));
        }

        MonitorPort = LoopbackPorts.GetFreePort();
        do
        {
            RgwPort = LoopbackPorts.GetFreePort();
        }
        while (RgwPort == MonitorPort);

        var fsid = Guid.NewGuid().ToString();
        await File.WriteAllTextAsync(ConfigPath, RenderConfig(fsid), cancellationToken).ConfigureAwait(false);

        await StepAsync("monitor", async () =>
        {
            var mkfsKeyring = Combine("keyring", "mon-mkfs.keyring");
            var adminKeyring = Combine("keyring", "client.admin.keyring");
            await RunCheckedAsync("ceph-authtool", ["--create-keyring", mkfsKeyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"], cancellationToken).ConfigureAwait(false);
            await RunCheckedAsync(
                "ceph-authtool",
                ["--create-keyring", adminKeyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *"],
                cancellationToken).ConfigureAwait(false);
            await RunCheckedAsync("ceph-authtool", [mkfsKeyring, "--import-keyring", adminKeyring], cancellationToken).ConfigureAwait(false);
            await RunCheckedAsync(
                "monmaptool",
                ["--create", "--fsid", fsid, "--addv", MonId, $"[v2:127.0.0.1:{MonitorPort.ToString(CultureInfo.InvariantCulture)}]", Combine("monmap")],
                cancellationToken).ConfigureAwait(false);
            await RunCheckedAsync("ceph-mon", ["-c", ConfigPath, "-i", MonId, "--mkfs", "--monmap", Combine("monmap"), "--keyring", mkfsKeyring], cancellationToken).ConfigureAwait(false);
            _mon = EngineDaemon.Start("mon." + MonId, Path.Combine(Bin, "ceph-mon"), ["-c", ConfigPath, "-i", MonId, "-f"], DirectoryPath, Combine("log", $"mon.{MonId}.log"));
        }).ConfigureAwait(false);

        await StepAsync("osd", async () =>
        {
            var key = (await RunCheckedAsync("ceph-authtool", ["--gen-print-key"], cancellationToken).ConfigureAwait(false)).StandardOutput.Trim();
            var secrets = Combine("osd-secrets.json");
            await File.WriteAllTextAsync(secrets, JsonSerializer.Serialize(new Dictionary<string, string> { ["cephx_secret"] = key }), cancellationToken).ConfigureAwait(false);
            var uuid = Guid.NewGuid().ToString();

            // The first command that needs the monitor: the CLI waits (bounded) until the monitor takes connections.
            var created = await RunCheckedAsync("ceph", ["-c", ConfigPath, "--connect-timeout", "30", "osd", "new", uuid, "-i", secrets], cancellationToken).ConfigureAwait(false);
            _osdId = int.Parse(created.StandardOutput.Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
            var name = "osd." + _osdId.ToString(CultureInfo.InvariantCulture);
            await RunCheckedAsync("ceph-authtool", ["--create-keyring", Combine("keyring", name + ".keyring"), "--name", name, "--add-key", key], cancellationToken).ConfigureAwait(false);
            Directory.CreateDirectory(Combine("osd", _osdId.ToString(CultureInfo.InvariantCulture)));
            var id = _osdId.ToString(CultureInfo.InvariantCulture);
            await RunCheckedAsync("ceph-osd", ["-c", ConfigPath, "-i", id, "--mkfs", "--osd-uuid", uuid, "--no-mon-config"], cancellationToken).ConfigureAwait(false);
            _osd = EngineDaemon.Start(name, Path.Combine(Bin, "ceph-osd"), ["-c", ConfigPath, "-i", id, "-f"], DirectoryPath, Combine("log", name + ".log"));
        }).ConfigureAwait(false);

        await StepAsync("radosgw", async () =>
        {
            await RunCheckedAsync(
                "ceph",
                ["-c", ConfigPath, "--connect-timeout", "30", "auth", "get-or-create", RgwName, "mon", "allow rw", "osd", "allow rwx", "-o", Combine("keyring", RgwName + ".keyring")],
                cancellationToken).ConfigureAwait(false);

            // At its first start RGW creates its pools (realm, zone, log, control, meta), which needs the OSD up.
            _rgw = StartRgwDaemon();
            await WaitForRgwAsync(cancellationToken).ConfigureAwait(false);
        }).ConfigureAwait(false);

        await StepAsync("s3 user", async () =>
        {
            var created = await RunCheckedAsync(
                "radosgw-admin",
                ["-c", ConfigPath, "user", "create", "--uid=" + UserId, "--display-name=MirrorProxy tests"],
                cancellationToken).ConfigureAwait(false);
            try
            {
                using var json = JsonDocument.Parse(created.StandardOutput);
                var keys = json.RootElement.GetProperty("keys")[0];
                AccessKey = keys.GetProperty("access_key").GetString() ?? "";
                SecretKey = keys.GetProperty("secret_key").GetString() ?? "";
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
            {
                throw new EngineStartException($"radosgw-admin user create printed no keys: {ex.Message}{System.Environment.NewLine}{Describe(created)}");
            }

            if (AccessKey.Length == 0 || SecretKey.Length == 0)
            {
                throw new EngineStartException($"radosgw-admin user create printed empty keys:{System.Environment.NewLine}{Describe(created)}");
            }
        }).ConfigureAwait(false);
    }

    private string RenderConfig(string fsid)
    {
        var invariant = CultureInfo.InvariantCulture;
        return $"""
            # A single-host cluster for tests; every path points into {DirectoryPath}.
            [global]
            fsid = {fsid}
            mon_host = [v2:127.0.0.1:{MonitorPort.ToString(invariant)}]
            ms_bind_msgr1 = false
            ms_bind_msgr2 = true
            ms_bind_ipv6 = false
            public_addr = 127.0.0.1
            cluster_addr = 127.0.0.1
            auth_cluster_required = cephx
            auth_service_required = cephx
            auth_client_required = cephx
            run_dir = {DirectoryPath}/run
            crash_dir = {DirectoryPath}/crash
            log_file = {DirectoryPath}/log/$name.log
            keyring = {DirectoryPath}/keyring/$name.keyring
            # rocksdb prints all its options at level 4: thousands of lines per start.
            debug_rocksdb = 1/5
            osd_pool_default_size = 1
            osd_pool_default_min_size = 1
            osd_pool_default_pg_num = 8
            osd_pool_default_pgp_num = 8
            osd_pool_default_pg_autoscale_mode = off
            mon_allow_pool_size_one = true
            mon_warn_on_pool_no_redundancy = false
            osd_crush_chooseleaf_type = 0

            [mon]
            mon_data = {DirectoryPath}/mon/$id
            keyring = $mon_data/keyring
            # The monitor stops below 5 % free disk by default; a test machine's disk may be fuller than a server's.
            mon_data_avail_crit = 1
            # Default 1 s: each of the pools RGW creates at its first start waits for a proposal.
            paxos_propose_interval = 0.1

            [osd]
            osd_data = {DirectoryPath}/osd/$id
            osd_objectstore = bluestore
            bluestore_block_create = true
            bluestore_block_size = {_options.OsdSizeBytes.ToString(invariant)}
            osd_memory_target = 1073741824

            [{RgwName}]
            rgw_data = {DirectoryPath}/rgw
            rgw_frontends = beast endpoint=127.0.0.1:{RgwPort.ToString(invariant)}

            """;
    }

    private EngineDaemon StartRgwDaemon()
        => EngineDaemon.Start("radosgw", Path.Combine(Bin, "radosgw"), ["-c", ConfigPath, "-n", RgwName, "-f"], DirectoryPath, Combine("log", RgwName + ".log"));

    /// <summary>Polls until RGW answers any HTTP request; fails at once when a daemon has exited.</summary>
    private async Task WaitForRgwAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ThrowIfDaemonExited();
            try
            {
                using var response = await s_probe.GetAsync(Endpoint, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // One probe timed out; the attempt's bound is what counts.
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    private void ThrowIfDaemonExited()
    {
        foreach (var daemon in new[] { _mon, _osd, _rgw })
        {
            if (daemon is { HasExited: true })
            {
                throw new EngineStartException($"{daemon.Name} exited with code {daemon.Exited.Result}.");
            }
        }
    }

    private async Task StepAsync(string name, Func<Task> step)
    {
        _step = name;
        var stopwatch = Stopwatch.StartNew();
        await step().ConfigureAwait(false);
        ThrowIfDaemonExited();
        _steps.Add($"{name} {stopwatch.Elapsed.TotalSeconds:F1} s");
    }

    private async Task<ProcessResult> RunCheckedAsync(string tool, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var result = await RunAsync(tool, arguments, cancellationToken).ConfigureAwait(false);
        return result.Succeeded ? result : throw new EngineStartException(Describe(result));
    }

    /// <summary>The command line, how it ended, and the last lines of what it printed (a failed ceph-osd prints a whole crash dump).</summary>
    private static string Describe(ProcessResult result, int lineCount = 30)
    {
        var status = result.TimedOut ? $"timed out after {result.Duration.TotalSeconds:F1} s" : $"exit code {result.ExitCode} after {result.Duration.TotalSeconds:F1} s";
        return $"`{result.CommandLine}` {status}{System.Environment.NewLine}"
            + $"--- stderr (last {lineCount} lines) ---{System.Environment.NewLine}{Tail(result.StandardError)}"
            + $"--- stdout (last {lineCount} lines) ---{System.Environment.NewLine}{Tail(result.StandardOutput)}";

        string Tail(string text)
        {
            var lines = text.TrimEnd().Split('\n');
            return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - lineCount))) + System.Environment.NewLine;
        }
    }

    private Task<ProcessResult> RunAsync(string tool, IEnumerable<string> arguments, CancellationToken cancellationToken)
        => ProcessRunner.RunAsync(
            Path.Combine(Bin, tool),
            arguments,
            s_toolTimeout,
            new ProcessRunOptions { WorkingDirectory = DirectoryPath, Environment = EngineDaemon.Environment },
            cancellationToken);
}
