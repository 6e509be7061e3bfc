using System.Net;
using System.Net.Sockets;

namespace MirrorProxy.IntegrationTests.Infrastructure;

/// <summary>
/// Hands out 127.0.0.1 ports for the servers the tests start. A port the OS picks for a bind to port 0 comes from the
/// ephemeral range, which every outgoing connection of the machine also draws from: between the release here and the
/// server's own bind, a client connection could take it ("address already in use"). So the ports come from below
/// that range, where only listeners bind, each one once per test run, and only after a bind shows it free.
/// </summary>
internal static class LoopbackPorts
{
    private const int Lowest = 20_000;

    private static readonly int s_end = EphemeralRangeStart();
    private static int s_next = Lowest + Random.Shared.Next(Math.Max(1, (s_end - Lowest) / 2));

    /// <summary>A 127.0.0.1 port below the ephemeral range that nothing listened on a moment ago and no other caller got.</summary>
    public static int GetFreePort()
    {
        for (var tried = 0; tried < s_end - Lowest; tried++)
        {
            var port = Interlocked.Increment(ref s_next) - 1;
            port = Lowest + ((port - Lowest) % (s_end - Lowest));
            if (IsFree(port))
            {
                return port;
            }
        }

        // Nothing free below the range (never seen): fall back to one the OS picks.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    private static bool IsFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port of the kernel's ephemeral range (<c>net.ipv4.ip_local_port_range</c>), 32768 where it cannot be read.</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.TryParse(range[0], out var start) && start > Lowest + 1_000 ? start : 32_768;
        }
        catch (IOException)
        {
            return 32_768;
        }
        catch (UnauthorizedAccessException)
        {
            return 32_768;
        }
    }
}
