using System.Net;
using System.Net.Sockets;

namespace FineTunePlatform.Testing;

public static class LoopbackPorts
{
    /// <summary>A port free on 127.0.0.1 right now (the kernel's pick), for a server the test starts next.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
