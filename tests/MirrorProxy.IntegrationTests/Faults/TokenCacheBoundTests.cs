using System.Diagnostics;
using System.Net;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Infrastructure.Network;
using MirrorProxy.IntegrationTests.Support;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Faults;

/// <summary>
/// Anonymous clients ask the real program for thousands of random repository names behind a bearer-token upstream
/// (a real registry with a token server): each name is a scope of its own, so each costs a token. What the mirror
/// keeps of them is bounded: its memory does not grow with the names, and the earliest tokens are dropped (asking
/// for those names again fetches new tokens) while the latest are still held (asking again fetches none).
/// </summary>
/// <remarks>
/// RSS alone cannot tell a bounded token cache from an unbounded one here: 5,000 tokens of this server (an ES256
/// JWT with its certificate, about 1.1 KB, held as a UTF-16 string, with its key) are about 13 MB, which is within
/// what the garbage collector's heap moves by under the same traffic. So the bound on RSS only rules out gross
/// growth, and the token server's request count shows what the cache kept.
/// </remarks>
public sealed class TokenCacheBoundTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Names = 5_000;
    private const int Concurrency = 8;
    private const int Probe = 50;
    private const long GrowthBound = 96L << 20;
    private readonly TempDirectory _work = new("tokens");
    private TestTokenServer _tokens = null!;
    private TestRegistry _registry = null!;

    public async Task InitializeAsync()
    {
        _tokens = await TestTokenServer.StartAsync();
        _registry = await TestRegistry.StartAsync(new TestRegistryOptions { TokenServer = _tokens });
    }

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        await _tokens.DisposeAsync();
        _work.Dispose();
    }

    [Fact]
    public async Task ThousandsOfRandomRepositoryNames_TokenCacheStaysBounded_OldestTokensDropped()
    {
        await using var mirror = await FaultSupport.StartProgramAsync(_work, _work.Combine("cache"), "docker.io", _registry.BaseUri, new Dictionary<string, string>());
        var names = Enumerable.Range(0, Names).Select(i => $"random/n{i:D5}-{Guid.NewGuid():N}").ToArray();

        // Warm the program up on names of their own, then measure from there.
        await RequestAllAsync(mirror, Enumerable.Range(0, 200).Select(i => $"warm/w{i}").ToArray());
        var before = FaultSupport.ResidentBytes(mirror.Id);
        var tokensBefore = _tokens.Requests;

        var stopwatch = Stopwatch.StartNew();
        await RequestAllAsync(mirror, names);
        var elapsed = stopwatch.Elapsed;
        var after = FaultSupport.ResidentBytes(mirror.Id);
        var fetched = _tokens.Requests - tokensBefore;
        output.WriteLine($"{Names} names in {elapsed.TotalSeconds:F1} s: {fetched} token requests; RSS {before >> 20} MiB -> {after >> 20} MiB ({(after - before) / (1024.0 * 1024):F1} MiB)");
        Assert.True(fetched >= Names, $"{fetched} token requests for {Names} names");
        Assert.True(after - before < GrowthBound, $"RSS grew by {(after - before) >> 20} MiB over {Names} names");

        // The latest names still have their tokens; the earliest had theirs dropped to keep the cache bounded.
        var latest = _tokens.Requests;
        await RequestAllAsync(mirror, names[^Probe..]);
        var latestFetched = _tokens.Requests - latest;
        var earliest = _tokens.Requests;
        await RequestAllAsync(mirror, names[..Probe]);
        var earliestFetched = _tokens.Requests - earliest;
        output.WriteLine($"asking again: the last {Probe} names fetched {latestFetched} tokens, the first {Probe} fetched {earliestFetched}");
        Assert.Equal(0, latestFetched);
        Assert.Equal(Probe, earliestFetched);
    }

    /// <summary>One manifest request per name, <see cref="Concurrency"/> at a time; each must be answered 404 (no such repository).</summary>
    private static async Task RequestAllAsync(MirrorProcess mirror, IReadOnlyList<string> names)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < names.Count)
            {
                using var response = await FaultSupport.GetManifestAsync(mirror.Client, $"/v2/{names[i]}/manifests/latest", timeout.Token);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{names[i]}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
        }));
    }
}
