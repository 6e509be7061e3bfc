using System.Globalization;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;
using MirrorProxy.Upstream;
using Microsoft.AspNetCore.Http;
using Microsoft.Win32.SafeHandles;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
    private async Task HandleBlobAsync(HttpContext context, Route route, string reference)
    {
        if (!TryParseDigest(reference, out var digest, out var digestError))
        {
            await digestError.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (await TryServeCachedBlobAsync(context, route, digest).ConfigureAwait(false))
        {
            return;
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            await HeadUncachedBlobAsync(context, route, digest).ConfigureAwait(false);
            return;
        }

        var ingest = _blobs.JoinOrStart(digest, route.Upstream, route.Repository, out var coalesced);
        try
        {
            var start = await ingest.Started.WaitAsync(context.RequestAborted).ConfigureAwait(false);
            if (start.AlreadyCached)
            {
                if (!await TryServeCachedBlobAsync(context, route, digest).ConfigureAwait(false))
                {
                    await OciError.BlobUnknown(digest.Value).WriteAsync(context).ConfigureAwait(false);
                }

                return;
            }

            if (start.Outcome != UpstreamOutcome.Success)
            {
                _metrics.Request(RequestKinds.Blob, start.Outcome == UpstreamOutcome.NotFound ? RequestResults.NotFound : RequestResults.Error, route.Upstream.Name);
                await UpstreamError(route, start.Outcome, start.RetryAfter, start.Detail, isBlob: true, digest.Value).WriteAsync(context).ConfigureAwait(false);
                return;
            }

            _metrics.Request(RequestKinds.Blob, coalesced ? RequestResults.Coalesced : RequestResults.Miss, route.Upstream.Name);
            await ServeFromIngestAsync(context, route, ingest, start.Length).ConfigureAwait(false);
        }
        finally
        {
            ingest.ReleaseReader();
        }
    }

    /// <summary>Serves a published blob, with Range support: small ones from memory, others from their file. False when it is not cached.</summary>
    private async ValueTask<bool> TryServeCachedBlobAsync(HttpContext context, Route route, Digest digest)
    {
        if (_cache.Hot.TryGet(digest.Value, out var hot))
        {
            await ServeBytesAsync(context, route, digest, hot.Content).ConfigureAwait(false);
            return true;
        }

        if (await _cache.TryGetContentAsync(digest).ConfigureAwait(false) is not { } entry)
        {
            return false;
        }

        if (entry.Size <= _cache.Hot.MaxObjectSize)
        {
            if (await _cache.ReadContentAsync(digest, context.RequestAborted, entry.MediaType).ConfigureAwait(false) is not { } content)
            {
                return false;
            }

            await ServeBytesAsync(context, route, digest, content).ConfigureAwait(false);
            return true;
        }

        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(_cache.Store.BlobPath(digest), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            _cache.Forget(digest);
            return false;
        }

        using (file)
        {
            _metrics.Request(RequestKinds.Blob, RequestResults.Hit, route.Upstream.Name);
            _cache.Touch(digest);
            if (!WriteBlobHeaders(context, digest, entry.Size, out var offset, out var count))
            {
                return true;
            }

            if (!HttpMethods.IsHead(context.Request.Method))
            {
                var sent = await ContentSender.CopyAsync(file, offset, count, context.Response.BodyWriter, context.RequestAborted).ConfigureAwait(false);
                _metrics.BytesServed(sent, fromCache: true, route.Upstream.Name);
                if (sent < count && !context.RequestAborted.IsCancellationRequested)
                {
                    // The file is shorter than the index said: never end such a response as if complete.
                    _cache.Forget(digest);
                    context.Abort();
                }
            }
        }

        return true;
    }

    private async Task ServeBytesAsync(HttpContext context, Route route, Digest digest, byte[] content)
    {
        _metrics.Request(RequestKinds.Blob, RequestResults.Hit, route.Upstream.Name);
        _cache.Touch(digest);
        if (WriteBlobHeaders(context, digest, content.Length, out var offset, out var count) && !HttpMethods.IsHead(context.Request.Method))
        {
            _metrics.BytesServed(count, fromCache: true, route.Upstream.Name);
            await context.Response.BodyWriter.WriteAsync(content.AsMemory((int)offset, (int)count), context.RequestAborted).ConfigureAwait(false);
        }
    }

    private async Task HeadUncachedBlobAsync(HttpContext context, Route route, Digest digest)
    {
        if (_blobs.TryGetActive(digest) is { Length: { } length, State: not IngestState.Failed })
        {
            WriteBlobHeaders(context, digest, length, out _, out _);
            return;
        }

        using var response = await route.Upstream.SendAsync(
            new UpstreamRequest(HttpMethod.Head, route.Repository, "blobs/" + digest.Value) { IsBlob = true }, context.RequestAborted).ConfigureAwait(false);
        if (!response.IsSuccess || response.Message!.Content.Headers.ContentLength is not { } size)
        {
            var outcome = response.IsSuccess ? UpstreamOutcome.Failed : response.Outcome;
            await UpstreamError(route, outcome, response.RetryAfter, response.Detail ?? "no Content-Length", isBlob: true, digest.Value).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        WriteBlobHeaders(context, digest, size, out _, out _);
    }

    /// <summary>
    /// Sets status and headers for a blob of <paramref name="total"/> bytes, honouring a single Range.
    /// False when the answer is complete already (416).
    /// </summary>
    private static bool WriteBlobHeaders(HttpContext context, Digest digest, long total, out long offset, out long count)
    {
        var response = context.Response;
        response.Headers[RegistryHeaders.ContentDigest] = digest.Value;
        response.Headers.AcceptRanges = "bytes";
        response.Headers.ETag = $"\"{digest.Value}\"";
        response.ContentType = MediaTypes.OctetStream;
        offset = 0;
        count = total;

        var rangeHeader = context.Request.Headers.Range;
        if (rangeHeader.Count == 1)
        {
            switch (ByteRange.TryParse(rangeHeader[0], total, out var range))
            {
                case RangeParseResult.Satisfiable:
                    response.StatusCode = StatusCodes.Status206PartialContent;
                    response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {range.Start}-{range.End}/{total}");
                    response.ContentLength = range.Length;
                    offset = range.Start;
                    count = range.Length;
                    return true;
                case RangeParseResult.NotSatisfiable:
                    response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                    response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes */{total}");
                    response.ContentLength = 0;
                    return false;
            }
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentLength = total;
        return true;
    }

    /// <summary>Streams a blob that is still downloading, following the file as it grows.</summary>
    private async Task ServeFromIngestAsync(HttpContext context, Route route, BlobIngest ingest, long? total)
    {
        long offset = 0;
        long? count = null;
        if (total is { } length)
        {
            if (!WriteBlobHeaders(context, ingest.Digest, length, out offset, out var rangeCount))
            {
                return;
            }

            count = rangeCount;
        }
        else
        {
            // Unknown length: answer chunked, without Range.
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = MediaTypes.OctetStream;
            response.Headers[RegistryHeaders.ContentDigest] = ingest.Digest.Value;
        }

        var writer = context.Response.BodyWriter;
        var cancellationToken = context.RequestAborted;
        var position = offset;
        var end = count is { } c ? offset + c : long.MaxValue;
        try
        {
            while (position < end)
            {
                var limit = await ingest.WaitForDataAsync(position, cancellationToken).ConfigureAwait(false);
                if (limit < 0)
                {
                    // The download failed or did not verify: the client must see a broken response, not an ending.
                    context.Abort();
                    return;
                }

                if (limit <= position)
                {
                    break; // complete, at the end of a blob of unknown length
                }

                var sent = await ContentSender.CopyAsync(ingest.Handle, position, Math.Min(limit, end) - position, writer, cancellationToken).ConfigureAwait(false);
                _metrics.BytesServed(sent, fromCache: false, route.Upstream.Name);
                if (sent == 0)
                {
                    return; // client gone
                }

                position += sent;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; the download goes on without it.
        }
    }
}
