using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using MirrorProxy.Cache;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.Storage;
using StackExchange.Redis;

namespace MirrorProxy.Coordination;

/// <summary>
/// Coordination through a Redis-protocol store (StackExchange.Redis). A lease is a key set only when absent, with an
/// expiry, holding this replica's id; it is extended and released only while it still holds that id (the client's
/// lock primitives: a conditional transaction). Tag records are JSON values; content use is a sorted set of digests
/// by last use. Every call is bounded by <c>Coordination:Timeout</c> (measured here: the client notices its own
/// timeouts only on its once-a-second heartbeat) and fails soft: a store that does not answer is reported
/// unreachable and the caller goes on alone. Commands are not queued while disconnected (they fail at
/// once), and after a call that failed the store is left alone for <see cref="HoldDown"/>: a replica whose store is
/// gone pays the timeout once per hold-down, not once per request. The readiness probe's ping always asks.
/// </summary>
internal sealed partial class RedisCoordination : ICoordination, IAsyncDisposable
{
    private readonly CoordinationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly MirrorMetrics _metrics;
    private readonly Task<ConnectionMultiplexer> _connection;
    private readonly RedisValue _self;
    private readonly RedisKey _accessKey;
    private int _reachable = 1;
    private long _quietUntil;

    /// <summary>How long calls answer "unreachable" without asking, after a call the store did not answer.</summary>
    internal static readonly TimeSpan HoldDown = TimeSpan.FromSeconds(5);

    public RedisCoordination(CoordinationOptions options, TimeProvider time, MirrorMetrics metrics, ILogger<RedisCoordination> logger)
    {
        _options = options;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        metrics.KnowCoordination();
        _self = Environment.MachineName + "/" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        _accessKey = options.KeyPrefix + "access";
        var configuration = ConfigurationOptions.Parse(options.Redis!);
        var timeout = (int)options.Timeout.TotalMilliseconds;
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = Math.Max(timeout, 1000);
        configuration.AsyncTimeout = timeout;
        configuration.SyncTimeout = timeout;
        configuration.ConnectRetry = 1;
        configuration.ClientName ??= "mirrorproxy";
        // A command issued while disconnected fails at once instead of waiting in a backlog for its timeout.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        // Reconnects in the background; until then calls fail fast as unreachable.
        _connection = ConnectionMultiplexer.ConnectAsync(configuration);
        Describe = CoordinationOptionsValidator.Redacted(options.Redis!);
    }

    public bool IsShared => true;

    public bool IsReachable => Volatile.Read(ref _reachable) == 1;

    public string Describe { get; }

    /// <summary>This replica's id, as lease values carry it.</summary>
    public string Self => _self.ToString();

    private RedisKey LeaseKey(string name) => _options.KeyPrefix + "lease:" + name;

    private RedisKey TagKey(string upstream, string repository, string tag) => string.Concat(_options.KeyPrefix, "tag:", upstream, "/", repository, ":", tag);

    public async ValueTask<(LeaseStatus Status, Lease? Lease)> TryAcquireAsync(string name, CancellationToken cancellationToken)
    {
        var key = LeaseKey(name);
        var taken = await CallAsync(static (db, s) => db.StringSetAsync(s.key, s.Self, s.Duration, When.NotExists),
            (key, Self: _self, Duration: _options.LeaseDuration)).ConfigureAwait(false);
        return taken switch
        {
            (true, true) => (LeaseStatus.Acquired, new Lease(name, _options.LeaseDuration,
                token => RenewAsync(key),
                () => ReleaseAsync(key), _time)),
            (true, false) => (LeaseStatus.HeldElsewhere, null),
            _ => (LeaseStatus.Unavailable, null),
        };
    }

    private async ValueTask<bool> RenewAsync(RedisKey key)
    {
        var (answered, extended) = await CallAsync(static (db, s) => db.LockExtendAsync(s.key, s.Self, s.Duration), (key, Self: _self, Duration: _options.LeaseDuration))
            .ConfigureAwait(false);
        if (answered && !extended)
        {
            Log.LeaseLost(_logger, key.ToString());
        }

        // A store that does not answer cannot give the lease to anyone else either: keep going.
        return !answered || extended;
    }

    private async ValueTask ReleaseAsync(RedisKey key) =>
        await CallAsync(static (db, s) => db.LockReleaseAsync(s.key, s.Self), (key, Self: _self)).ConfigureAwait(false);

    public async ValueTask<bool> PingAsync(CancellationToken cancellationToken) =>
        (await CallAsync(static (db, _) => db.PingAsync(), 0, probe: true).ConfigureAwait(false)).Answered;

    public async ValueTask<bool> IsHeldAsync(string name, CancellationToken cancellationToken)
    {
        var (answered, exists) = await CallAsync(static (db, key) => db.KeyExistsAsync(key), LeaseKey(name)).ConfigureAwait(false);
        return answered && exists;
    }

    public async ValueTask<TagRecord?> GetTagAsync(string upstream, string repository, string tag, CancellationToken cancellationToken)
    {
        var (answered, value) = await CallAsync(static (db, key) => db.StringGetAsync(key), TagKey(upstream, repository, tag)).ConfigureAwait(false);
        return answered && value.HasValue ? MirrorCache.ParseTag((byte[])value!) : null;
    }

    public async ValueTask PutTagAsync(string upstream, string repository, string tag, TagRecord record, CancellationToken cancellationToken)
    {
        var key = TagKey(upstream, repository, tag);
        if (await GetTagAsync(upstream, repository, tag, cancellationToken).ConfigureAwait(false) is { } shared && shared.FetchedAt > record.FetchedAt)
        {
            return;
        }

        await CallAsync(static (db, s) => db.StringSetAsync(s.key, s.Value), (key, Value: (RedisValue)MirrorCache.SerializeTag(record))).ConfigureAwait(false);
    }

    public void RecordAccess(Digest digest, DateTimeOffset when)
    {
        if (IsReachable && _connection.IsCompletedSuccessfully)
        {
            _connection.Result.GetDatabase().SortedSetAdd(_accessKey, digest.Value, when.ToUnixTimeMilliseconds(), CommandFlags.FireAndForget);
        }
    }

    public async ValueTask<DateTimeOffset?[]> GetAccessAsync(IReadOnlyList<Digest> digests, CancellationToken cancellationToken)
    {
        var members = digests.Select(d => (RedisValue)d.Value).ToArray();
        var (answered, scores) = await CallAsync(static (db, s) => db.SortedSetScoresAsync(s.Key, s.Members), (Key: _accessKey, Members: members)).ConfigureAwait(false);
        var result = new DateTimeOffset?[digests.Count];
        if (answered && scores is not null)
        {
            for (var i = 0; i < result.Length && i < scores.Length; i++)
            {
                result[i] = scores[i] is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds((long)ms) : null;
            }
        }

        return result;
    }

    public void ForgetAccess(Digest digest)
    {
        if (IsReachable && _connection.IsCompletedSuccessfully)
        {
            _connection.Result.GetDatabase().SortedSetRemove(_accessKey, digest.Value, CommandFlags.FireAndForget);
        }
    }

    /// <summary>One call to the store: (true, its answer), or (false, default) when it cannot answer now.</summary>
    private async ValueTask<(bool Answered, T Value)> CallAsync<TState, T>(Func<IDatabase, TState, Task<T>> call, TState state, bool probe = false)
    {
        if (!probe && _time.GetTimestamp() < Interlocked.Read(ref _quietUntil))
        {
            _metrics.CoordinationCall(CoordinationOutcomes.HeldDown);
            return (false, default!);
        }

        Task<T>? pending = null;
        try
        {
            var connection = await _connection.WaitAsync(_options.Timeout, _time).ConfigureAwait(false);
            pending = call(connection.GetDatabase(), state);
            var value = await pending.WaitAsync(_options.Timeout, _time).ConfigureAwait(false);
            Interlocked.Exchange(ref _quietUntil, 0);
            _metrics.CoordinationCall(CoordinationOutcomes.Answered);
            if (Interlocked.Exchange(ref _reachable, 1) == 0)
            {
                Log.Reachable(_logger, Describe);
            }

            return (true, value);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            if (pending is { IsCompleted: false })
            {
                // Left behind: the client fails it on its next heartbeat, and that failure is seen here, not lost.
                _ = pending.ContinueWith(static t => t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            Interlocked.Exchange(ref _quietUntil, _time.GetTimestamp() + (long)(HoldDown.TotalSeconds * _time.TimestampFrequency));
            _metrics.CoordinationCall(CoordinationOutcomes.Unanswered);
            if (Interlocked.Exchange(ref _reachable, 0) == 1)
            {
                Log.Unreachable(_logger, Describe, ex.Message);
            }

            return (false, default!);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection.IsCompletedSuccessfully)
        {
            await _connection.Result.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Warning, "Coordination store {Store} is unreachable ({Reason}): replicas work alone (downloads may be repeated) until it answers")]
        public static partial void Unreachable(ILogger logger, string store, string reason);

        [LoggerMessage(7002, LogLevel.Information, "Coordination store {Store} answers again")]
        public static partial void Reachable(ILogger logger, string store);

        [LoggerMessage(7003, LogLevel.Warning, "Lease {Key} was lost (expired or taken): another replica may be doing the same work")]
        public static partial void LeaseLost(ILogger logger, string key);
    }
}
