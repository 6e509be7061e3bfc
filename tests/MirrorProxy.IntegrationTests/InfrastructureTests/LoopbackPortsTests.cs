using System.Net;
using System.Net.Sockets;
using MirrorProxy.IntegrationTests.Infrastructure;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>
/// A replica once failed to start because a port handed out here was taken before it bound ("address already in
/// use"): the OS had picked it from the ephemeral range, which outgoing connections also use.
/// </summary>
public sealed class LoopbackPortsTests
{
    [Fact]
    public void Ports_AreBelowTheEphemeralRange_FreeToBind_AndNeverHandedOutTwice()
    {
        var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var ephemeralStart = int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture);

        var ports = Enumerable.Range(0, 200).Select(_ => LoopbackPorts.GetFreePort()).ToList();

        Assert.All(ports, port => Assert.InRange(port, 1_024, ephemeralStart - 1));
        Assert.Equal(ports.Count, ports.Distinct().Count());
        foreach (var port in ports.Take(20))
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
            listener.Listen();
        }
    }

    [Fact]
    public void APortSomeoneListensOn_IsNotHandedOut()
    {
        // Take the next few ports the allocator would try, so that it has to pass them over.
        var taken = new List<Socket>();
        try
        {
            var probe = LoopbackPorts.GetFreePort();
            for (var port = probe + 1; port <= probe + 5; port++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
                    socket.Listen();
                    taken.Add(socket);
                }
                catch (SocketException)
                {
                    socket.Dispose();
                }
            }

            var next = LoopbackPorts.GetFreePort();

            Assert.DoesNotContain(next, taken.Select(socket => ((IPEndPoint)socket.LocalEndPoint!).Port));
        }
        finally
        {
            taken.ForEach(socket => socket.Dispose());
        }
    }
}
