using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Auth;

/// <summary>How checking a user's password went.</summary>
internal enum PasswordCheck
{
    Valid,
    Invalid,
    /// <summary>No such user.</summary>
    UnknownUser,
}

/// <summary>
/// The users of an htpasswd file (bcrypt entries only, as <c>htpasswd -B</c> writes them), re-read when the file
/// changes (checked at most every two seconds). bcrypt costs tens of milliseconds by design, so a password that
/// verified is remembered (as a SHA-256, per user) until the file changes, and a few hundred recent failures are
/// remembered too, with at most as many bcrypt checks at once as there are cores: a client sending endless wrong
/// passwords costs bounded CPU and memory.
/// </summary>
internal sealed partial class HtpasswdUsers
{
    private const int MaxRememberedFailures = 512;
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _bcrypt = new(Environment.ProcessorCount, Environment.ProcessorCount);
    private readonly Lock _reloadGate = new();
    private State _state;
    private long _nextCheck;

    private sealed class State(Dictionary<string, string> hashes, DateTime lastWrite)
    {
        public Dictionary<string, string> Hashes { get; } = hashes;

        public DateTime LastWrite { get; } = lastWrite;

        public ConcurrentDictionary<string, byte[]> Verified { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<string, byte> Failed { get; } = new(StringComparer.Ordinal);
    }

    public HtpasswdUsers(string path, TimeProvider time, ILogger logger)
    {
        _path = path;
        _time = time;
        _logger = logger;
        _state = Load();
    }

    /// <summary>Users now (the file is re-read first when it changed).</summary>
    public int Count => Current().Hashes.Count;

    /// <summary>Why the lines are not a usable htpasswd file; null when they are.</summary>
    public static string? Validate(IEnumerable<string> lines)
    {
        var number = 0;
        foreach (var line in lines)
        {
            number++;
            if (line.Trim().Length == 0 || line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                return $"line {number} is not user:hash";
            }

            if (!IsBcrypt(line[(colon + 1)..].Trim()))
            {
                return $"line {number} ({line[..colon]}) is not a bcrypt entry: create users with htpasswd -B";
            }
        }

        return null;
    }

    public async ValueTask<PasswordCheck> CheckAsync(string user, string password, CancellationToken cancellationToken)
    {
        var state = Current();
        if (!state.Hashes.TryGetValue(user, out var hash))
        {
            return PasswordCheck.UnknownUser;
        }

        var fingerprint = SHA256.HashData(Encoding.UTF8.GetBytes(password));
        if (state.Verified.TryGetValue(user, out var known) && CryptographicOperations.FixedTimeEquals(known, fingerprint))
        {
            return PasswordCheck.Valid;
        }

        var failureKey = user + ":" + Convert.ToHexString(fingerprint);
        if (state.Failed.ContainsKey(failureKey))
        {
            return PasswordCheck.Invalid;
        }

        await _bcrypt.WaitAsync(cancellationToken).ConfigureAwait(false);
        bool valid;
        try
        {
            valid = BCrypt.Net.BCrypt.Verify(password, hash);
        }
        catch (BCrypt.Net.SaltParseException)
        {
            valid = false;
        }
        finally
        {
            _bcrypt.Release();
        }

        if (valid)
        {
            state.Verified[user] = fingerprint;
            return PasswordCheck.Valid;
        }

        if (state.Failed.Count >= MaxRememberedFailures)
        {
            state.Failed.Clear();
        }

        state.Failed.TryAdd(failureKey, 0);
        return PasswordCheck.Invalid;
    }

    private State Current()
    {
        var now = _time.GetTimestamp();
        if (now < Volatile.Read(ref _nextCheck) || !_reloadGate.TryEnter())
        {
            return Volatile.Read(ref _state);
        }

        try
        {
            Volatile.Write(ref _nextCheck, now + (long)(CheckInterval.TotalSeconds * _time.TimestampFrequency));
            var lastWrite = File.GetLastWriteTimeUtc(_path);
            if (lastWrite != _state.LastWrite)
            {
                Volatile.Write(ref _state, Load());
                Log.Reloaded(_logger, _path, _state.Hashes.Count);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Keep the users we have: a file being replaced is not a reason to lock everyone out.
            Log.ReloadFailed(_logger, _path, ex.Message);
        }
        finally
        {
            _reloadGate.Exit();
        }

        return Volatile.Read(ref _state);
    }

    private State Load()
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        var lastWrite = File.GetLastWriteTimeUtc(_path);
        foreach (var line in File.ReadAllLines(_path))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && !line.TrimStart().StartsWith('#') && line[(colon + 1)..].Trim() is var hash && IsBcrypt(hash))
            {
                hashes[line[..colon].Trim()] = hash;
            }
        }

        return new State(hashes, lastWrite);
    }

    private static bool IsBcrypt(string hash) =>
        hash.Length == 60 && (hash.StartsWith("$2y$", StringComparison.Ordinal) || hash.StartsWith("$2a$", StringComparison.Ordinal) || hash.StartsWith("$2b$", StringComparison.Ordinal));

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Information, "Users re-read from {File}: {Count}")]
        public static partial void Reloaded(ILogger logger, string file, int count);

        [LoggerMessage(7002, LogLevel.Warning, "Users could not be re-read from {File} (the previous ones stay): {Reason}")]
        public static partial void ReloadFailed(ILogger logger, string file, string reason);
    }
}
