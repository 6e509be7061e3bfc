using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MirrorProxy.IntegrationTests.Support;
using StackExchange.Redis;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>
/// Garnet (a Redis-protocol server) as a separate process on 127.0.0.1 and a free port, in memory only (no checkpoint,
/// no AOF): stopping it loses everything, as losing a non-persistent coordination store does. The <c>garnet-server</c>
/// .NET tool is found through <c>MIRRORPROXY_TEST_GARNET</c>, else in <c>.tools/garnet</c> at the repository root,
/// where scripts/test.sh installs it.
/// </summary>
internal sealed class GarnetServer : IAsyncDisposable
{
    public const string NameKind = "garnet";

    public const string ExecutableVariable = "MIRRORPROXY_TEST_GARNET";

    private static readonly TimeSpan s_startupTimeout = TimeSpan.FromSeconds(30);
    private static readonly byte[] s_ping = "*1\r\n$4\r\nPING\r\n"u8.ToArray();

    private readonly string _directory;
    private EngineDaemon? _daemon;
    private int _disposed;

    private GarnetServer(string directory, int port)
    {
        _directory = directory;
        Port = port;
    }

    /// <summary>The garnet-server executable: <c>$MIRRORPROXY_TEST_GARNET</c>, else <c>&lt;repository&gt;/.tools/garnet/garnet-server</c>.</summary>
    public static string Executable => System.Environment.GetEnvironmentVariable(ExecutableVariable) is { Length: > 0 } path
        ? path
        : Path.Combine(RepositoryRoot.Path, ".tools", "garnet", "garnet-server");

    public int Port { get; private set; }

    /// <summary><c>127.0.0.1:PORT</c>, the StackExchange.Redis configuration string of this server.</summary>
    public string ConnectionString => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>From process start to the first PONG, for the last start.</summary>
    public TimeSpan StartupTime { get; private set; }

    public bool IsRunning => _daemon is { HasExited: false };

    /// <summary>The PID of the running server, or null while it is stopped.</summary>
    public int? ProcessId => _daemon is { HasExited: false } daemon ? daemon.Id : null;

    public static async Task<GarnetServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var executable = Executable;
        if (!File.Exists(executable))
        {
            throw new EngineStartException(
                $"garnet-server not found at {executable}. Set {ExecutableVariable}, or install the tool there: "
                + "dotnet tool install --tool-path .tools/garnet garnet-server --version 2.2.8 (scripts/test.sh does).");
        }

        await EngineLeftovers.RemoveOnceAsync(cancellationToken).ConfigureAwait(false);
        var directory = Path.Combine(EngineLeftovers.BaseDirectory, TestRunNames.Next(NameKind));
        Directory.CreateDirectory(directory);
        var server = new GarnetServer(directory, LoopbackPorts.GetFreePort());
        try
        {
            // The port is found by binding to port 0 and releasing it; if another process took it meanwhile, take another.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
                    return server;
                }
                catch (EngineStartException) when (attempt < 3 && server._daemon is { HasExited: true })
                {
                    await server.StopAsync(cancellationToken).ConfigureAwait(false);
                    server.Port = LoopbackPorts.GetFreePort();
                }
            }
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Kills the server (SIGKILL to its PID): connections drop, the port refuses, and every key is gone.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        var daemon = _daemon;
        _daemon = null;
        if (daemon is not null)
        {
            await daemon.KillAsync(cancellationToken).ConfigureAwait(false);
            await daemon.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Starts an empty server again on the same port.</summary>
    public Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (_daemon is not null)
        {
            throw new InvalidOperationException("Garnet is still running; call StopAsync first.");
        }

        return StartProcessAsync(cancellationToken);
    }

    /// <summary>A StackExchange.Redis connection to this server (admin commands allowed when asked). Caller disposes.</summary>
    public async Task<ConnectionMultiplexer> ConnectAsync(bool allowAdmin = false)
    {
        var options = new ConfigurationOptions
        {
            EndPoints = { EndPoint },
            AllowAdmin = allowAdmin,
            AbortOnConnectFail = true,
            ConnectTimeout = 5000,
            SyncTimeout = 5000,
            AsyncTimeout = 5000,
            ClientName = "mirrorproxy-tests",
        };
        return await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
    }

    /// <summary>FLUSHALL: every key of every database is deleted.</summary>
    public async Task FlushAllAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await ConnectAsync(allowAdmin: true).WaitAsync(cancellationToken).ConfigureAwait(false);
        await connection.GetServer(EndPoint).FlushAllDatabasesAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The last lines of the server's output.</summary>
    public string Tail(int lineCount = 40) => _daemon?.Tail(lineCount) ?? "(garnet-server is not running)";

    public override string ToString() => $"Garnet {ConnectionString} ({_directory})";

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        ShortTempDirectory.DeleteBestEffort(_directory);
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        _daemon = EngineDaemon.Start(
            "garnet-server",
            Executable,
            [
                "--bind", "127.0.0.1",
                "--port", Port.ToString(CultureInfo.InvariantCulture),
                // Its native device library needs glibc 2.38; Debian 12 has 2.36.
                "--device-type", "RandomAccess",
                // Compare-and-delete and similar atomic steps are Lua scripts.
                "--lua",
                "--memory", "256m",
                "--index", "16m",
                "--checkpointdir", Path.Combine(_directory, "checkpoints"),
                "-q",
            ],
            _directory,
            logFile: null);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_startupTimeout);
        try
        {
            while (!await TryPingAsync(timeout.Token).ConfigureAwait(false))
            {
                if (_daemon.HasExited)
                {
                    throw new EngineStartException($"garnet-server exited with code {_daemon.Exited.Result} before answering PING on {ConnectionString}.{System.Environment.NewLine}{_daemon.Tail()}");
                }

                await Task.Delay(100, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EngineStartException($"garnet-server did not answer PING on {ConnectionString} within {s_startupTimeout.TotalSeconds:F0} s.{System.Environment.NewLine}{_daemon.Tail()}");
        }

        StartupTime = stopwatch.Elapsed;
    }

    /// <summary>One RESP PING over a new connection; true on +PONG.</summary>
    private async Task<bool> TryPingAsync(CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(TimeSpan.FromSeconds(2));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(EndPoint, attempt.Token).ConfigureAwait(false);
            await socket.SendAsync(s_ping, SocketFlags.None, attempt.Token).ConfigureAwait(false);
            var buffer = new byte[64];
            var read = 0;
            while (read < 7)
            {
                var count = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, attempt.Token).ConfigureAwait(false);
                if (count == 0)
                {
                    break;
                }

                read += count;
            }

            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
