using System.Globalization;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace MirrorProxy.IntegrationTests.Infrastructure.Engines;

/// <summary>The tests that need the shared blob store and coordination store; they run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class ScaleOutCollection : ICollectionFixture<ScaleOutEngines>
{
    public const string Name = "scale-out";
}

/// <summary>
/// One Ceph RGW (S3) and one Garnet (Redis protocol) for the whole "scale-out" collection: Ceph takes tens of seconds
/// to come up, so it is started once. Tests stay independent by using their own bucket (<see cref="NewBucketName"/>)
/// and key prefix (<see cref="NewKeyPrefix"/>); a test that stops an engine starts it again before it ends.
/// </summary>
public sealed class ScaleOutEngines : IAsyncLifetime
{
    private static readonly TimeSpan s_startupTimeout = TimeSpan.FromMinutes(6);

    private readonly IMessageSink _diagnostics;
    private CephRgw? _rgw;
    private GarnetServer? _garnet;
    private int _names;

    public ScaleOutEngines(IMessageSink diagnostics)
    {
        _diagnostics = diagnostics;
    }

    internal CephRgw Rgw => _rgw ?? throw new InvalidOperationException("The scale-out engines are not started.");

    internal GarnetServer Garnet => _garnet ?? throw new InvalidOperationException("The scale-out engines are not started.");

    /// <summary>How each engine came up, for the test output.</summary>
    internal string StartupReport => $"{Rgw.StartupReport}; Garnet at {Garnet.ConnectionString} up in {Garnet.StartupTime.TotalSeconds:F1} s";

    /// <summary>A signing S3 client for the shared RGW's user. Caller disposes.</summary>
    internal S3TestClient CreateS3Client() => Rgw.CreateClient();

    /// <summary>A bucket name no other test uses: lowercase, 3–63 characters, <c>&lt;purpose&gt;-&lt;n&gt;-&lt;random&gt;</c>.</summary>
    internal string NewBucketName(string purpose)
    {
        var clean = new string(purpose.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray()).Trim('-');
        clean = clean.Length == 0 ? "test" : clean[..Math.Min(clean.Length, 40)].TrimEnd('-');
        return $"{clean}-{Interlocked.Increment(ref _names).ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid().ToString("N")[..8]}";
    }

    /// <summary>A coordination-store key prefix no other test uses, e.g. <c>locks:7:1a2b3c4d:</c>.</summary>
    internal string NewKeyPrefix(string purpose)
        => $"{purpose}:{Interlocked.Increment(ref _names).ToString(CultureInfo.InvariantCulture)}:{Guid.NewGuid().ToString("N")[..8]}:";

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(s_startupTimeout);
        var rgw = CephRgw.StartAsync(cancellationToken: timeout.Token);
        var garnet = GarnetServer.StartAsync(timeout.Token);
        try
        {
            await Task.WhenAll(rgw, garnet);
        }
        catch
        {
            // Whichever came up is stopped; the failure of the other is what the tests report.
            if (rgw.IsCompletedSuccessfully)
            {
                await rgw.Result.DisposeAsync();
            }

            if (garnet.IsCompletedSuccessfully)
            {
                await garnet.Result.DisposeAsync();
            }

            throw;
        }

        _rgw = rgw.Result;
        _garnet = garnet.Result;
        _diagnostics.OnMessage(new DiagnosticMessage("scale-out engines: {0}", StartupReport));
    }

    public async Task DisposeAsync()
    {
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        if (_rgw is not null)
        {
            await _rgw.DisposeAsync();
        }

        if (_garnet is not null)
        {
            await _garnet.DisposeAsync();
        }

        _diagnostics.OnMessage(new DiagnosticMessage("scale-out engines stopped in {0:F1} s", stopwatch.Elapsed.TotalSeconds));
    }
}
