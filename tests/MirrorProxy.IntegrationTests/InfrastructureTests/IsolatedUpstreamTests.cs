using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Network;

namespace MirrorProxy.IntegrationTests.InfrastructureTests;

/// <summary>A real registry in a network namespace, and what pulling and plugging its cable does to clients here.</summary>
public sealed class IsolatedUpstreamTests
{
    [Fact]
    public async Task PulledCable_NewConnectTimesOut_EstablishedConnectionHangs_PluggedCableAnswersAgain()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await using var upstream = await IsolatedUpstream.StartAsync(cancellationToken: cts.Token);
        var chart = await OciImageFactory.PushHelmChartAsync(upstream.Registry, "isolated/chart", "1.0.0", "isolated", cts.Token);
        var endpoint = new IPEndPoint(upstream.Network.InnerAddress, upstream.Registry.Port);
        Assert.StartsWith("169.254.", upstream.HostPort, StringComparison.Ordinal);

        // Through the veth, with one keep-alive connection.
        using var established = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await established.ConnectAsync(endpoint, cts.Token);
        var first = await RawHttp.SendAsync(established, $"/v2/{chart.Repository}/manifests/{chart.Tag}", cts.Token);
        Assert.Equal(200, first.Status);
        Assert.Equal(chart.ManifestBytes, first.Body);

        await upstream.PullCableAsync(cts.Token);
        Assert.Equal(CableState.Pulled, upstream.Cable);

        // A new connection: the SYN is dropped, so the attempt runs into the client's own timeout: no refusal, no error.
        using (var fresh = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            var stopwatch = Stopwatch.StartNew();
            using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var failure = await Record.ExceptionAsync(() => fresh.ConnectAsync(endpoint, connectTimeout.Token).AsTask());
            stopwatch.Stop();
            Assert.IsAssignableFrom<OperationCanceledException>(failure);
            // It ran into the 1 s timeout (whose timer ticks coarser than the stopwatch: 999 ms was seen), not a refusal (a few ms).
            Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(900), $"the connect ended after {stopwatch.ElapsedMilliseconds} ms");
        }

        // The same through HttpClient's connect timeout.
        using (var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) }) { BaseAddress = upstream.BaseUri })
        {
            var failure = await Record.ExceptionAsync(() => client.GetAsync("v2/", cts.Token));
            Assert.NotNull(failure);
            Assert.False(IsRefusedOrReset(failure), $"expected a timeout, got {failure}");
        }

        // The established connection: the next request is sent (into the void) and nothing comes back, not even a reset.
        await established.SendAsync(RawHttp.Request($"/v2/{chart.Repository}/manifests/{chart.Tag}"), cts.Token);
        var buffer = new byte[4096];
        using (var readTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            var failure = await Record.ExceptionAsync(() => established.ReceiveAsync(buffer, readTimeout.Token).AsTask());
            Assert.IsAssignableFrom<OperationCanceledException>(failure);
        }

        // The registry is still up on the far side: probes from inside the namespace reach it.
        await upstream.Registry.WaitUntilReadyAsync(cts.Token);

        await upstream.PlugCableAsync(cts.Token);

        // The request that hung is answered on TCP's next retransmission; new connections work at once.
        var resumed = await RawHttp.ReadResponseAsync(established, cts.Token);
        Assert.Equal(200, resumed.Status);
        Assert.Equal(chart.ManifestBytes, resumed.Body);
        using var again = upstream.Registry.CreateHttpClient(timeout: TimeSpan.FromSeconds(5));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"v2/{chart.Repository}/manifests/{chart.Tag}") { Headers = { { "Accept", OciMediaTypes.AllManifestTypes } } };
        using var response = await again.SendAsync(request, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(chart.ManifestBytes, await response.Content.ReadAsByteArrayAsync(cts.Token));
    }

    [Fact]
    public async Task RefusingCable_NewConnectIsRefused_EstablishedConnectionIsReset()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var upstream = await IsolatedUpstream.StartAsync(cancellationToken: cts.Token);
        var endpoint = new IPEndPoint(upstream.Network.InnerAddress, upstream.Registry.Port);
        using var established = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await established.ConnectAsync(endpoint, cts.Token);
        Assert.Equal(200, (await RawHttp.SendAsync(established, "/v2/", cts.Token)).Status);

        await upstream.RefuseConnectionsAsync(cts.Token);

        using (var fresh = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            var refused = await Assert.ThrowsAsync<SocketException>(() => fresh.ConnectAsync(endpoint, cts.Token).AsTask());
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        }

        var reset = await Record.ExceptionAsync(() => RawHttp.SendAsync(established, "/v2/", cts.Token));
        Assert.True(reset is SocketException { SocketErrorCode: SocketError.ConnectionReset } || reset is IOException, $"expected a reset, got {reset?.ToString() ?? "an answer"}");

        await upstream.PlugCableAsync(cts.Token);
        using var client = upstream.Registry.CreateHttpClient(timeout: TimeSpan.FromSeconds(5));
        using var response = await client.GetAsync("v2/", cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task TwoNamespaces_DoNotClash_AndDisposeRemovesNamespaceLinkAndProcesses()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var first = await NetworkNamespace.CreateAsync(cts.Token);
        RunningProcess? sleeper = null;
        string name, outer;
        try
        {
            await using var second = await NetworkNamespace.CreateAsync(cts.Token);
            Assert.NotEqual(first.Name, second.Name);
            Assert.NotEqual(first.InnerAddress, second.InnerAddress);
            Assert.NotEqual(first.OuterAddress, second.OuterAddress);
            Assert.NotEqual(first.OuterInterface, second.OuterInterface);
            Assert.Contains(second.Name, await NetworkNamespace.ListAsync(cts.Token));

            // Each reaches its own namespace only.
            var inside = await first.RunAsync(SystemCommand.Resolve("ip"), ["-o", "-4", "addr", "show"], TimeSpan.FromSeconds(10), cts.Token);
            Assert.Contains(first.InnerAddress + "/30", inside.EnsureSuccess().StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(second.InnerAddress + "/30", inside.StandardOutput, StringComparison.Ordinal);

            sleeper = first.StartProcess("/bin/sleep", ["600"]);
            name = first.Name;
            outer = first.OuterInterface;
            Assert.True((await SystemCommand.TryRunAsync("ip", ["link", "show", outer], cts.Token)).Succeeded);
        }
        finally
        {
            await first.DisposeAsync();
        }

        Assert.DoesNotContain(name, await NetworkNamespace.ListAsync(cts.Token));
        Assert.True(await sleeper.WaitForExitAsync(TimeSpan.FromSeconds(10), cts.Token), "the process inside was killed");
        await sleeper.DisposeAsync();

        // The namespace's veth end goes with it, and the root side of the pair with that (the kernel may take a moment).
        var deadline = Stopwatch.StartNew();
        while ((await SystemCommand.TryRunAsync("ip", ["link", "show", outer], cts.Token)).Succeeded)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"{outer} still exists");
            await Task.Delay(50, cts.Token);
        }
    }

    [Fact]
    public async Task Leftovers_OfADeadRunAreRemoved_ThoseOfLiveRunsAreKept()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // This process's id with another start time: the run that had this id before ours, long gone.
        var dead = $"{TestRunNames.Prefix}{NetworkNamespace.NameKind}-{Environment.ProcessId}-1-1";
        var live = $"{TestRunNames.Prefix}{NetworkNamespace.NameKind}-{TestRunNames.Run}-{int.MaxValue}";
        Assert.True(TestRunNames.IsLeftover(dead, NetworkNamespace.NameKind));
        Assert.False(TestRunNames.IsLeftover(live, NetworkNamespace.NameKind));
        Assert.False(TestRunNames.IsLeftover("some-other-namespace", NetworkNamespace.NameKind));
        try
        {
            await SystemCommand.RunAsync("ip", ["netns", "add", dead], cts.Token);
            await SystemCommand.RunAsync("ip", ["netns", "add", live], cts.Token);

            await NetworkNamespace.RemoveLeftoversAsync(cts.Token);

            var remaining = await NetworkNamespace.ListAsync(cts.Token);
            Assert.DoesNotContain(dead, remaining);
            Assert.Contains(live, remaining);
        }
        finally
        {
            await SystemCommand.TryRunAsync("ip", ["netns", "delete", dead], CancellationToken.None);
            await SystemCommand.TryRunAsync("ip", ["netns", "delete", live], CancellationToken.None);
        }
    }

    [Fact]
    public async Task BasicAuthRegistry_InNamespace_WantsItsCredentials()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var credentials = new RegistryCredentials("island-user", "island-Pass1");
        await using var upstream = await IsolatedUpstream.StartAsync(new IsolatedUpstreamOptions { BasicAuth = credentials }, cts.Token);
        var chart = await OciImageFactory.PushHelmChartAsync(upstream.Registry, "isolated/basic", "1.0.0", "isolated-basic", cts.Token);

        using (var anonymous = upstream.Registry.CreateHttpClient(authenticated: false, timeout: TimeSpan.FromSeconds(5)))
        using (var response = await anonymous.GetAsync($"v2/{chart.Repository}/manifests/{chart.Tag}", cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Basic", Assert.Single(response.Headers.WwwAuthenticate).Scheme);
        }

        Assert.Equal(chart.ManifestBytes, await Skopeo.InspectRawAsync("docker://" + chart.Reference(upstream.HostPort), credentials, cts.Token));
    }

    [Fact]
    public async Task BearerRegistry_ChallengesWithARealmInTheNamespace_TokensOpenIt_PulledCableCutsTheTokenServerToo()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var credentials = new RegistryCredentials("token-user", "token-Pass1");
        await using var upstream = await IsolatedUpstream.StartAsync(new IsolatedUpstreamOptions { BearerAuth = true, TokenCredentials = credentials }, cts.Token);
        var tokens = upstream.TokenServer!;
        var chart = await OciImageFactory.PushHelmChartAsync(upstream.Registry, "isolated/bearer", "1.0.0", "isolated-bearer", cts.Token);
        Assert.Equal(upstream.Network.InnerAddress.ToString(), tokens.Realm.Host);

        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(10) };
        var manifestUri = new Uri(upstream.BaseUri, $"v2/{chart.Repository}/manifests/{chart.Tag}");
        AuthenticationHeaderValue challenge;
        using (var response = await client.GetAsync(manifestUri, cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            challenge = Assert.Single(response.Headers.WwwAuthenticate);
        }

        Assert.Equal("Bearer", challenge.Scheme);
        Assert.Contains($"realm=\"{tokens.Realm}\"", challenge.Parameter, StringComparison.Ordinal);
        Assert.Contains($"service=\"{tokens.Service}\"", challenge.Parameter, StringComparison.Ordinal);
        Assert.Contains($"scope=\"repository:{chart.Repository}:pull\"", challenge.Parameter, StringComparison.Ordinal);

        var tokenUri = new Uri($"{tokens.Realm}?service={Uri.EscapeDataString(tokens.Service)}&scope={Uri.EscapeDataString($"repository:{chart.Repository}:pull")}");
        using (var wrong = new HttpRequestMessage(HttpMethod.Get, tokenUri) { Headers = { Authorization = new RegistryCredentials(credentials.Username, "wrong").ToBasicAuthenticationHeader() } })
        using (var response = await client.SendAsync(wrong, cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        string token;
        using (var right = new HttpRequestMessage(HttpMethod.Get, tokenUri) { Headers = { Authorization = credentials.ToBasicAuthenticationHeader() } })
        using (var response = await client.SendAsync(right, cts.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cts.Token));
            token = json.RootElement.GetProperty("token").GetString()!;
        }

        using (var authorized = new HttpRequestMessage(HttpMethod.Get, manifestUri) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token), Accept = { new(OciMediaTypes.ImageManifest) } } })
        using (var response = await client.SendAsync(authorized, cts.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(chart.ManifestBytes, await response.Content.ReadAsByteArrayAsync(cts.Token));
        }

        // A real client does the whole dance: challenge, token with Basic credentials, request with the token.
        var issuedBefore = tokens.TokensIssued;
        Assert.Equal(chart.ManifestBytes, await Skopeo.InspectRawAsync("docker://" + chart.Reference(upstream.HostPort), credentials, cts.Token));
        Assert.True(tokens.TokensIssued > issuedBefore, "skopeo fetched a token");

        // The token server sits behind the same cable (a new client: the pooled connection would hang instead).
        await upstream.PullCableAsync(cts.Token);
        using var fresh = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromSeconds(10) };
        var stopwatch = Stopwatch.StartNew();
        var failure = await Record.ExceptionAsync(() => fresh.GetAsync(tokenUri, cts.Token));
        Assert.NotNull(failure);
        Assert.False(IsRefusedOrReset(failure), $"expected a timeout, got {failure}");
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(900), $"the connect ended after {stopwatch.ElapsedMilliseconds} ms"); // the 1 s connect timeout, as above
        await upstream.PlugCableAsync(cts.Token);
        using (var response = await fresh.GetAsync(tokenUri, cts.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode); // reachable again (and still wants credentials)
        }
    }

    private static bool IsRefusedOrReset(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.ConnectionReset or SocketError.HostUnreachable or SocketError.NetworkUnreachable })
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>HTTP/1.1 over a raw socket, so a test knows which connection each request uses.</summary>
    private static class RawHttp
    {
        public static byte[] Request(string path) => Encoding.ASCII.GetBytes(
            $"GET {path} HTTP/1.1\r\nHost: upstream\r\nAccept: {string.Join(", ", OciMediaTypes.AllManifestTypes)}\r\nConnection: keep-alive\r\n\r\n");

        public static async Task<(int Status, byte[] Body)> SendAsync(Socket socket, string path, CancellationToken cancellationToken)
        {
            await socket.SendAsync(Request(path), cancellationToken);
            return await ReadResponseAsync(socket, cancellationToken);
        }

        /// <summary>Reads one response with a Content-Length body.</summary>
        public static async Task<(int Status, byte[] Body)> ReadResponseAsync(Socket socket, CancellationToken cancellationToken)
        {
            var received = new List<byte>();
            var buffer = new byte[8192];
            int headerEnd;
            while ((headerEnd = IndexOfHeaderEnd(received)) < 0)
            {
                var count = await socket.ReceiveAsync(buffer, cancellationToken);
                if (count == 0)
                {
                    throw new IOException("The connection closed before the response headers.");
                }

                received.AddRange(buffer.AsSpan(0, count));
            }

            var head = Encoding.ASCII.GetString(received.GetRange(0, headerEnd).ToArray());
            var lines = head.Split("\r\n");
            var status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
            var length = lines.Skip(1)
                .Select(l => l.Split(':', 2))
                .Where(p => p[0].Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                .Select(p => int.Parse(p[1].Trim(), CultureInfo.InvariantCulture))
                .Single();
            while (received.Count < headerEnd + 4 + length)
            {
                var count = await socket.ReceiveAsync(buffer, cancellationToken);
                if (count == 0)
                {
                    throw new IOException("The connection closed in the body.");
                }

                received.AddRange(buffer.AsSpan(0, count));
            }

            return (status, received.GetRange(headerEnd + 4, length).ToArray());
        }

        private static int IndexOfHeaderEnd(List<byte> bytes)
        {
            for (var i = 0; i + 3 < bytes.Count; i++)
            {
                if (bytes[i] == '\r' && bytes[i + 1] == '\n' && bytes[i + 2] == '\r' && bytes[i + 3] == '\n')
                {
                    return i;
                }
            }

            return -1;
        }
    }
}
