using System.Net;
using System.Net.Sockets;

namespace MirrorProxy.IntegrationTests.Infrastructure;

internal static class LoopbackPorts
{
    /// <summary>Asks the OS for a free 127.0.0.1 port (bind to port 0, read it, release it).</summary>
    public static int GetFreePort()
    {
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
}
