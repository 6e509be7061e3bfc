namespace MirrorProxy.Storage;

/// <summary>What re-hashing a stored object found.</summary>
internal enum VerifyResult
{
    Ok,
    /// <summary>Its size is not the expected one.</summary>
    WrongSize,
    /// <summary>Its bytes do not hash to its digest.</summary>
    WrongDigest,
    /// <summary>Gone since it was listed.</summary>
    Gone,
    /// <summary>The storage failed to read it: not a verdict on the content.</summary>
    Unreadable,
}

/// <summary>Re-hashes stored objects: the background scrub and the offline <c>mirrorproxy verify</c> share it.</summary>
internal static class ContentVerifier
{
    /// <summary>
    /// Reads <paramref name="stored"/> whole through <paramref name="buffer"/>, hashing it. <paramref name="pace"/>
    /// is awaited after each chunk with the bytes read so far (a rate limit, a progress report).
    /// </summary>
    public static async Task<VerifyResult> VerifyAsync(
        IContentStore store, StoredObject stored, byte[] buffer, Func<long, CancellationToken, ValueTask>? pace, CancellationToken cancellationToken)
    {
        var (status, reader) = await store.OpenReadAsync(stored.Digest, stored.Size, cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case StorageStatus.Ok:
                break;
            case StorageStatus.Mismatch:
                return VerifyResult.WrongSize;
            case StorageStatus.NotFound:
                return VerifyResult.Gone;
            default:
                return VerifyResult.Unreadable;
        }

        using (reader)
        using (var hash = stored.Digest.CreateHash())
        {
            var offset = 0L;
            while (offset < reader!.Length)
            {
                int read;
                try
                {
                    read = await reader.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    return VerifyResult.Unreadable;
                }

                if (read == 0)
                {
                    return VerifyResult.WrongSize;
                }

                hash.AppendData(buffer, 0, read);
                offset += read;
                if (pace is not null)
                {
                    await pace(offset, cancellationToken).ConfigureAwait(false);
                }
            }

            Span<byte> digest = stackalloc byte[64];
            var length = hash.GetHashAndReset(digest);
            return stored.Digest.MatchesHash(digest[..length]) ? VerifyResult.Ok : VerifyResult.WrongDigest;
        }
    }
}
