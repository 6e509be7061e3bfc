using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MirrorProxy.IntegrationTests.Infrastructure.Network;

internal enum CableState
{
    Plugged,

    /// <summary>Every packet across the cable is dropped: connects time out, established connections hang.</summary>
    Pulled,

    /// <summary>TCP is answered with a reset: connects are refused, established connections are reset.</summary>
    Refusing,
}

/// <summary>
/// A network namespace joined to this one by a veth pair: a host of its own, reached at <see cref="InnerAddress"/>
/// through a /30 of link-local addresses that no other instance holds, with a cable the test can pull.
/// </summary>
/// <remarks>
/// <para>How the cable is pulled, measured on this kernel (6.18, no sch_netem) with a client in one namespace and a
/// server in another, neither with a default route, so nothing could leave the machine:</para>
/// <list type="bullet">
/// <item><c>ip link set &lt;inner&gt; down</c>: an established connection hangs, but a new connect fails with
/// EHOSTUNREACH once neighbour resolution gives up (0.8 to 3.1 s): an error, not a timeout.</item>
/// <item><c>ip link set &lt;outer&gt; down</c>: new connects fail at once with ENETUNREACH because the link's route
/// goes with it; in the root namespace the address would then fall to the default route and leave the machine.</item>
/// <item><c>tc qdisc add ... netem loss 100%</c>: "Specified qdisc kind is unknown" (the kernel has no netem).</item>
/// <item>nftables (or iptables-nft) drop in the namespace's input and output hooks, loopback excepted: a 1 s
/// connect times out at 1.0 s, a 10 s connect at 10.0 s, an established connection gets no answer and no reset;
/// after the rules go, its pending request is answered on the next retransmission (12.7 s later in that run).</item>
/// </list>
/// <para>So <see cref="PullCableAsync"/> installs that drop inside the namespace: the root namespace keeps its
/// route and neighbour entry, and the far end falls silent as when a cable beyond the first hop is pulled.
/// <see cref="RefuseConnectionsAsync"/> answers TCP with a reset instead (ECONNREFUSED, ECONNRESET at once).</para>
/// </remarks>
internal sealed partial class NetworkNamespace : IAsyncDisposable
{
    public const string NameKind = "ns";
    private const string CableTable = "mirrorproxy_cable";

    // 169.254.200.0/21, in /30 blocks: link-local, so never routed beyond a link, and clear of 169.254.169.254.
    private const uint FirstBlockAddress = (169u << 24) | (254u << 16) | (200u << 8);
    private const int BlockCount = 512;

    private static readonly SemaphoreSlim s_allocationGate = new(1, 1);
    private static readonly Lock s_leftoversGate = new();
    private static readonly string s_lockFile = Path.Combine(Path.GetTempPath(), TestRunNames.Prefix + "network.lock");
    private static Task? s_leftoversRemoved;

    private int _disposed;

    private NetworkNamespace(string name, string outerInterface, string innerInterface, IPAddress outerAddress, IPAddress innerAddress)
    {
        Name = name;
        OuterInterface = outerInterface;
        InnerInterface = innerInterface;
        OuterAddress = outerAddress;
        InnerAddress = innerAddress;
    }

    /// <summary>The namespace's name (<c>ip netns</c>), <c>mirrorproxy-test-ns-&lt;run&gt;-&lt;n&gt;</c>.</summary>
    public string Name { get; }

    /// <summary>The veth end in this (the root) namespace.</summary>
    public string OuterInterface { get; }

    /// <summary>The veth end inside the namespace.</summary>
    public string InnerInterface { get; }

    /// <summary>This side's address on the veth.</summary>
    public IPAddress OuterAddress { get; }

    /// <summary>The namespace's address: where servers inside it listen.</summary>
    public IPAddress InnerAddress { get; }

    public CableState Cable { get; private set; } = CableState.Plugged;

    public static async Task<NetworkNamespace> CreateAsync(CancellationToken cancellationToken = default)
    {
        await RemoveLeftoversOnceAsync(cancellationToken).ConfigureAwait(false);
        var name = TestRunNames.Next(NameKind);
        var token = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray().AsSpan(0, 4));
        string outer = $"mpt{token}o", inner = $"mpt{token}i";
        await s_allocationGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var crossProcessLock = await AcquireLockAsync(cancellationToken).ConfigureAwait(false);
            var (outerAddress, innerAddress) = await FindFreeBlockAsync(cancellationToken).ConfigureAwait(false);
            var network = new NetworkNamespace(name, outer, inner, outerAddress, innerAddress);
            try
            {
                await Ip(["netns", "add", name], cancellationToken).ConfigureAwait(false);
                await Ip(["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", name], cancellationToken).ConfigureAwait(false);
                await Ip(["addr", "add", $"{outerAddress}/30", "dev", outer], cancellationToken).ConfigureAwait(false);
                await Ip(["link", "set", outer, "up"], cancellationToken).ConfigureAwait(false);
                await Ip(["-n", name, "addr", "add", $"{innerAddress}/30", "dev", inner], cancellationToken).ConfigureAwait(false);
                await Ip(["-n", name, "link", "set", inner, "up"], cancellationToken).ConfigureAwait(false);
                await Ip(["-n", name, "link", "set", "lo", "up"], cancellationToken).ConfigureAwait(false);
                return network;
            }
            catch
            {
                await network.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        finally
        {
            s_allocationGate.Release();
        }
    }

    /// <summary>Drops every packet crossing the cable, both ways (traffic inside the namespace still flows).</summary>
    public Task PullCableAsync(CancellationToken cancellationToken = default)
        => SetCableAsync(CableState.Pulled, cancellationToken);

    /// <summary>Answers every TCP segment arriving over the cable with a reset.</summary>
    public Task RefuseConnectionsAsync(CancellationToken cancellationToken = default)
        => SetCableAsync(CableState.Refusing, cancellationToken);

    /// <summary>Lets traffic through again; connections that hung resume on their next retransmission.</summary>
    public Task PlugCableAsync(CancellationToken cancellationToken = default)
        => SetCableAsync(CableState.Plugged, cancellationToken);

    /// <summary>Starts a long-running process inside the namespace (<c>ip netns exec</c>, which execs: the id is the process's own).</summary>
    public RunningProcess StartProcess(string fileName, IEnumerable<string> arguments, ProcessRunOptions? options = null, OutputBuffer? output = null)
        => ProcessRunner.Start(SystemCommand.Resolve("ip"), ["netns", "exec", Name, fileName, .. arguments], options, output);

    /// <summary>Runs a command inside the namespace to completion, bounded by <paramref name="timeout"/>.</summary>
    public Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
        => ProcessRunner.RunAsync(SystemCommand.Resolve("ip"), ["netns", "exec", Name, fileName, .. arguments], timeout, cancellationToken);

    /// <summary>A TCP socket inside the namespace, listening on <see cref="InnerAddress"/>:<paramref name="port"/>. Caller disposes.</summary>
    public Task<Socket> ListenAsync(int port, CancellationToken cancellationToken = default)
        => RunInsideAsync(() =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(InnerAddress, port));
                socket.Listen(512);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }, cancellationToken);

    /// <summary>
    /// A handler whose connections start inside the namespace: a client on the far side of the cable, which a
    /// pulled cable does not reach. For probes and log reads of servers in the namespace. Caller disposes.
    /// </summary>
    public SocketsHttpHandler CreateInsideHandler() => new()
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        PooledConnectionLifetime = TimeSpan.FromSeconds(5),
        SslOptions = { RemoteCertificateValidationCallback = static (_, _, _, _) => true },
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = await RunInsideAsync(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), cancellationToken).ConfigureAwait(false);
            try
            {
                socket.NoDelay = true;
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>Kills what still runs inside, then deletes the namespace (and with it the veth pair).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await RemoveAsync(Name, CancellationToken.None).ConfigureAwait(false);
    }

    public override string ToString() => $"{Name} ({OuterInterface} {OuterAddress} <-> {InnerInterface} {InnerAddress}, cable {Cable})";

    /// <summary>The names of the test namespaces that exist now (<c>ip netns list</c>).</summary>
    internal static async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken)
    {
        var result = await SystemCommand.RunAsync("ip", ["netns", "list"], cancellationToken).ConfigureAwait(false);
        return result.StandardOutput
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ')[0])
            .Where(name => name.StartsWith(TestRunNames.Prefix + NameKind + "-", StringComparison.Ordinal))
            .ToArray();
    }

    /// <summary>Removes the namespaces of runs that are no longer alive, and what still runs in them.</summary>
    internal static async Task RemoveLeftoversAsync(CancellationToken cancellationToken)
    {
        foreach (var name in await ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (TestRunNames.IsLeftover(name, NameKind))
            {
                await RemoveAsync(name, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static Task RemoveLeftoversOnceAsync(CancellationToken cancellationToken)
    {
        lock (s_leftoversGate)
        {
            if (s_leftoversRemoved is null || s_leftoversRemoved.IsFaulted || s_leftoversRemoved.IsCanceled)
            {
                s_leftoversRemoved = RemoveLeftoversAsync(cancellationToken);
            }

            return s_leftoversRemoved;
        }
    }

    private static async Task RemoveAsync(string name, CancellationToken cancellationToken)
    {
        var pids = await SystemCommand.TryRunAsync("ip", ["netns", "pids", name], cancellationToken).ConfigureAwait(false);
        foreach (var line in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    NativeSignals.Send(pid, NativeSignals.SigKill);
                }
                catch (System.ComponentModel.Win32Exception)
                {
                    // Exited in between.
                }
            }
        }

        var result = await SystemCommand.TryRunAsync("ip", ["netns", "delete", name], cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded && !result.StandardError.Contains("No such file", StringComparison.Ordinal))
        {
            throw new InvalidOperationException(result.Describe());
        }
    }

    private async Task SetCableAsync(CableState state, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        // Declaring, deleting and declaring again in one nft transaction replaces the table atomically, present or not.
        var script = new StringBuilder($"table inet {CableTable} {{}}\ndelete table inet {CableTable}\n");
        switch (state)
        {
            case CableState.Pulled:
                script.Append($$"""
                    table inet {{CableTable}} {
                      chain input { type filter hook input priority 0; policy accept; iif "lo" accept; drop; }
                      chain output { type filter hook output priority 0; policy accept; oif "lo" accept; drop; }
                    }

                    """);
                break;
            case CableState.Refusing:
                script.Append($$"""
                    table inet {{CableTable}} {
                      chain input { type filter hook input priority 0; policy accept; iif "lo" accept; meta l4proto tcp reject with tcp reset; reject; }
                    }

                    """);
                break;
        }

        var result = await ProcessRunner.RunAsync(
            SystemCommand.Resolve("ip"),
            ["netns", "exec", Name, SystemCommand.Resolve("nft"), "-f", "-"],
            TimeSpan.FromSeconds(30),
            new ProcessRunOptions { StandardInput = Encoding.UTF8.GetBytes(script.ToString()) },
            cancellationToken).ConfigureAwait(false);
        result.EnsureSuccess();
        Cable = state;
    }

    private static async Task<(IPAddress Outer, IPAddress Inner)> FindFreeBlockAsync(CancellationToken cancellationToken)
    {
        var listing = await SystemCommand.RunAsync("ip", ["-o", "-4", "addr", "show"], cancellationToken).ConfigureAwait(false);
        var taken = new HashSet<int>();
        foreach (var line in listing.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var inet = Array.IndexOf(fields, "inet");
            if (inet >= 0 && inet + 1 < fields.Length
                && IPAddress.TryParse(fields[inet + 1].Split('/')[0], out var address)
                && ToUInt32(address) is var value and >= FirstBlockAddress and < FirstBlockAddress + (BlockCount * 4))
            {
                taken.Add((int)((value - FirstBlockAddress) / 4));
            }
        }

        var start = Random.Shared.Next(BlockCount);
        for (var i = 0; i < BlockCount; i++)
        {
            var block = (start + i) % BlockCount;
            if (!taken.Contains(block))
            {
                var baseAddress = FirstBlockAddress + (uint)(block * 4);
                return (FromUInt32(baseAddress + 1), FromUInt32(baseAddress + 2));
            }
        }

        throw new InvalidOperationException($"All {BlockCount} test address blocks in 169.254.200.0/21 are in use.");
    }

    /// <summary>Serialises address allocation with other test processes (an advisory lock on a file in /tmp).</summary>
    private static async Task<FileStream> AcquireLockAsync(CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        while (true)
        {
            try
            {
                return new FileStream(s_lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(50, linked.Token).ConfigureAwait(false);
            }
        }
    }

    private static Task Ip(string[] arguments, CancellationToken cancellationToken) => SystemCommand.RunAsync("ip", arguments, cancellationToken);

    private static uint ToUInt32(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes.Length == 4 ? ((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3] : 0;
    }

    private static IPAddress FromUInt32(uint value) => new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}
