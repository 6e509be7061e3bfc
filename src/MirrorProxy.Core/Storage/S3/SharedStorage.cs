using Microsoft.Extensions.Logging;
using MirrorProxy.Cache;
using MirrorProxy.Common;

namespace MirrorProxy.Storage.S3;

/// <summary>Opens the S3 store replicas share, as the cache's shared tier.</summary>
internal static class SharedStorage
{
    /// <summary>Copies to the shared store running at once.</summary>
    private const int ConcurrentUploads = 4;

    public static SharedTier Open(S3Options options, CacheOptions cache, BackgroundWork background, TimeProvider time, ILoggerFactory loggers)
    {
        var client = new S3Client(options, S3Credentials.From(options), time, loggers.CreateLogger<S3Client>());
        var store = new S3ContentStore(client, options, loggers.CreateLogger<S3ContentStore>());
        // The local copy of an object read from the shared store must fit the local budget with room to spare.
        var maxFill = Math.Min(cache.MaxBlobSize.Bytes, cache.MaxSize is { } max ? max.Bytes / 4 : long.MaxValue);
        return new SharedTier(store, new S3MetadataStore(client, options), () => client.IsReachable, maxFill, ConcurrentUploads, background, loggers.CreateLogger<SharedTier>());
    }
}
