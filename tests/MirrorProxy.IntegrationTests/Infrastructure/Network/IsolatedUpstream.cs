namespace MirrorProxy.IntegrationTests.Infrastructure.Network;

internal sealed class IsolatedUpstreamOptions
{
    /// <summary>The registry requires these Basic credentials (htpasswd).</summary>
    public RegistryCredentials? BasicAuth { get; init; }

    /// <summary>The registry requires bearer tokens from a token server in the same namespace.</summary>
    public bool BearerAuth { get; init; }

    /// <summary>With <see cref="BearerAuth"/>: the token server gives tokens only for these Basic credentials.</summary>
    public RegistryCredentials? TokenCredentials { get; init; }
}

/// <summary>
/// A real upstream on a host of its own: Debian's distribution registry (and, with bearer auth, a token server)
/// inside a fresh network namespace, reached over a veth whose cable the test can pull, so the client side sees
/// what an island sees when its uplink dies: connects that time out, requests that hang.
/// </summary>
internal sealed class IsolatedUpstream : IAsyncDisposable
{
    private IsolatedUpstream(NetworkNamespace network, TestRegistry registry, TestTokenServer? tokenServer)
    {
        Network = network;
        Registry = registry;
        TokenServer = tokenServer;
    }

    public NetworkNamespace Network { get; }

    public TestRegistry Registry { get; }

    /// <summary>The token server, with <see cref="IsolatedUpstreamOptions.BearerAuth"/>.</summary>
    public TestTokenServer? TokenServer { get; }

    /// <summary><c>http://&lt;namespace address&gt;:5000/</c>.</summary>
    public Uri BaseUri => Registry.BaseUri;

    public string HostPort => Registry.HostPort;

    public CableState Cable => Network.Cable;

    public static async Task<IsolatedUpstream> StartAsync(IsolatedUpstreamOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new IsolatedUpstreamOptions();
        if (options.BearerAuth && options.BasicAuth is not null)
        {
            throw new ArgumentException("A registry takes either Basic or bearer authentication, not both.", nameof(options));
        }

        var network = await NetworkNamespace.CreateAsync(cancellationToken).ConfigureAwait(false);
        TestTokenServer? tokenServer = null;
        try
        {
            if (options.BearerAuth)
            {
                tokenServer = await TestTokenServer.StartAsync(
                    new TestTokenServerOptions { Network = network, Credentials = options.TokenCredentials },
                    cancellationToken).ConfigureAwait(false);
            }

            var registry = await TestRegistry.StartAsync(
                new TestRegistryOptions { Network = network, BasicAuth = options.BasicAuth, TokenServer = tokenServer },
                cancellationToken).ConfigureAwait(false);
            return new IsolatedUpstream(network, registry, tokenServer);
        }
        catch
        {
            if (tokenServer is not null)
            {
                await tokenServer.DisposeAsync().ConfigureAwait(false);
            }

            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc cref="NetworkNamespace.PullCableAsync"/>
    public Task PullCableAsync(CancellationToken cancellationToken = default) => Network.PullCableAsync(cancellationToken);

    /// <inheritdoc cref="NetworkNamespace.PlugCableAsync"/>
    public Task PlugCableAsync(CancellationToken cancellationToken = default) => Network.PlugCableAsync(cancellationToken);

    /// <inheritdoc cref="NetworkNamespace.RefuseConnectionsAsync"/>
    public Task RefuseConnectionsAsync(CancellationToken cancellationToken = default) => Network.RefuseConnectionsAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await Registry.DisposeAsync().ConfigureAwait(false);
        if (TokenServer is not null)
        {
            await TokenServer.DisposeAsync().ConfigureAwait(false);
        }

        await Network.DisposeAsync().ConfigureAwait(false);
    }

    public override string ToString() => $"IsolatedUpstream {BaseUri} in {Network}";
}
