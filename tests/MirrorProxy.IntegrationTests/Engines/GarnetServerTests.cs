using System.Net;
using System.Net.Sockets;
using MirrorProxy.IntegrationTests.Infrastructure.Engines;
using MirrorProxy.IntegrationTests.Support;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace MirrorProxy.IntegrationTests.Engines;

/// <summary>The shared Garnet answers the Redis commands coordination needs, can be emptied, and can be lost and brought back.</summary>
[Collection(ScaleOutCollection.Name)]
public sealed class GarnetServerTests(ScaleOutEngines engines, ITestOutputHelper output)
{
    private const string CompareAndDelete = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

    [Fact]
    public async Task SetNxPx_SecondSetRefused_KeyExpires()
    {
        output.WriteLine(engines.StartupReport);
        await using var connection = await engines.Garnet.ConnectAsync();
        var db = connection.GetDatabase();
        var prefix = engines.NewKeyPrefix("lease");

        Assert.True(await db.StringSetAsync(prefix + "long", "owner-a", TimeSpan.FromSeconds(30), When.NotExists));
        Assert.False(await db.StringSetAsync(prefix + "long", "owner-b", TimeSpan.FromSeconds(30), When.NotExists));
        Assert.Equal("owner-a", (string?)await db.StringGetAsync(prefix + "long"));
        var ttl = await db.KeyTimeToLiveAsync(prefix + "long");
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(30));

        Assert.True(await db.StringSetAsync(prefix + "short", "owner-a", TimeSpan.FromMilliseconds(300), When.NotExists));
        await Eventually.TrueAsync(async () => !await db.KeyExistsAsync(prefix + "short"), TimeSpan.FromSeconds(10), "a key set with PX 300 expires");
        Assert.True(await db.StringSetAsync(prefix + "short", "owner-b", TimeSpan.FromSeconds(30), When.NotExists));
    }

    [Fact]
    public async Task LuaCompareAndDelete_DeletesOnlyTheOwnersValue()
    {
        await using var connection = await engines.Garnet.ConnectAsync();
        var db = connection.GetDatabase();
        var key = engines.NewKeyPrefix("lua") + "lock";
        Assert.True(await db.StringSetAsync(key, "owner-a", TimeSpan.FromSeconds(30), When.NotExists));

        var notOwner = await db.ScriptEvaluateAsync(CompareAndDelete, [key], ["owner-b"]);
        Assert.Equal(0, (int)notOwner);
        Assert.True(await db.KeyExistsAsync(key));

        var owner = await db.ScriptEvaluateAsync(CompareAndDelete, [key], ["owner-a"]);
        Assert.Equal(1, (int)owner);
        Assert.False(await db.KeyExistsAsync(key));
    }

    [Fact]
    public async Task FlushAll_EmptiesTheServer()
    {
        await using var connection = await engines.Garnet.ConnectAsync();
        var db = connection.GetDatabase();
        var prefix = engines.NewKeyPrefix("flush");
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await db.StringSetAsync(prefix + i, "v"));
        }

        await engines.Garnet.FlushAllAsync();

        for (var i = 0; i < 3; i++)
        {
            Assert.False(await db.KeyExistsAsync(prefix + i));
        }

        Assert.Equal(0, await connection.GetServer(engines.Garnet.EndPoint).DatabaseSizeAsync());
    }

    [Fact]
    public async Task Stop_RefusesConnections_StartAgain_SamePortAndEmpty()
    {
        var key = engines.NewKeyPrefix("restart") + "k";
        await using (var connection = await engines.Garnet.ConnectAsync())
        {
            Assert.True(await connection.GetDatabase().StringSetAsync(key, "v"));
        }

        var port = engines.Garnet.Port;
        var pid = engines.Garnet.ProcessId;
        Assert.NotNull(pid);

        await engines.Garnet.StopAsync();
        try
        {
            Assert.False(engines.Garnet.IsRunning);
            Assert.Null(engines.Garnet.ProcessId);
            Assert.False(Directory.Exists($"/proc/{pid}"), $"garnet-server (pid {pid}) is still there after StopAsync");
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var refused = await Assert.ThrowsAsync<SocketException>(() => socket.ConnectAsync(IPAddress.Loopback, port));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        }
        finally
        {
            await engines.Garnet.StartAgainAsync();
            output.WriteLine($"garnet-server started again in {engines.Garnet.StartupTime.TotalSeconds:F1} s");
        }

        Assert.Equal(port, engines.Garnet.Port);
        await using var again = await engines.Garnet.ConnectAsync();
        var db = again.GetDatabase();
        Assert.True((await db.PingAsync()) >= TimeSpan.Zero);
        Assert.False(await db.KeyExistsAsync(key));
    }
}
