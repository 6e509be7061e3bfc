using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Storage;

/// <summary>
/// Documents kept both on this node and in the store replicas share. Writes go to the local copy first (this node
/// must keep working when the shared store is down) and then to the shared one; reads ask the shared store first
/// (another replica may have written since), and the local copy when the shared store is unreachable or lacks the
/// document. Keys under <see cref="MetadataKeys.LocalPrefix"/> are this node's own and stay local.
/// </summary>
internal sealed partial class SharedMetadataStore : IMetadataStore
{
    private readonly IMetadataStore _local;
    private readonly IMetadataStore _shared;
    private readonly Func<bool> _reachable;
    private readonly ILogger _logger;

    public SharedMetadataStore(IMetadataStore local, IMetadataStore shared, Func<bool> reachable, ILogger<SharedMetadataStore> logger)
    {
        _local = local;
        _shared = shared;
        _reachable = reachable;
        _logger = logger;
    }

    private static bool IsLocal(string key) => key.StartsWith(MetadataKeys.LocalPrefix, StringComparison.Ordinal);

    public async ValueTask<byte[]?> ReadAsync(string key, int maxBytes, CancellationToken cancellationToken)
    {
        if (!IsLocal(key) && _reachable() && await _shared.ReadAsync(key, maxBytes, cancellationToken).ConfigureAwait(false) is { } shared)
        {
            return shared;
        }

        return await _local.ReadAsync(key, maxBytes, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<StorageStatus> WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var status = await _local.WriteAsync(key, content, cancellationToken).ConfigureAwait(false);
        if (!IsLocal(key))
        {
            var shared = await _shared.WriteAsync(key, content, cancellationToken).ConfigureAwait(false);
            if (shared != StorageStatus.Ok)
            {
                Log.SharedWriteFailed(_logger, key, shared);
            }
        }

        return status;
    }

    public async ValueTask<StorageStatus> DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var status = await _local.DeleteAsync(key, cancellationToken).ConfigureAwait(false);
        if (!IsLocal(key))
        {
            var shared = await _shared.DeleteAsync(key, cancellationToken).ConfigureAwait(false);
            if (shared is not (StorageStatus.Ok or StorageStatus.NotFound))
            {
                Log.SharedWriteFailed(_logger, key, shared);
            }
            else if (status == StorageStatus.NotFound)
            {
                status = shared;
            }
        }

        return status;
    }

    public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken) =>
        !IsLocal(prefix) && _reachable() ? Union(_shared.ListAsync(prefix, cancellationToken), _local.ListAsync(prefix, cancellationToken), cancellationToken) : _local.ListAsync(prefix, cancellationToken);

    /// <summary>
    /// This node's documents at any depth (what rebuilding its index walks): every document it wrote is
    /// local too (another replica's are read from the shared store when asked for), and a walk of the shared store
    /// would cost a set of names as large as the cache.
    /// </summary>
    public IAsyncEnumerable<string> EnumerateAsync(string prefix, CancellationToken cancellationToken) => _local.EnumerateAsync(prefix, cancellationToken);

    /// <summary>
    /// The shared names, then the local ones the shared store lacks (written while it was down). One level of one
    /// prefix (the tags of one repository, the pin sets), so the set of names seen stays small.
    /// </summary>
    private static async IAsyncEnumerable<string> Union(IAsyncEnumerable<string> shared, IAsyncEnumerable<string> local, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var name in shared.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (seen.Add(name))
            {
                yield return name;
            }
        }

        await foreach (var name in local.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (!seen.Contains(name))
            {
                yield return name;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2320, LogLevel.Warning, "Document {Key} was kept on this node only: the shared store answered {Status}")]
        public static partial void SharedWriteFailed(ILogger logger, string key, StorageStatus status);
    }
}
