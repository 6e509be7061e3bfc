using System.Globalization;
using Microsoft.AspNetCore.Http;
using MirrorProxy.Metrics;
using MirrorProxy.Oci;
using MirrorProxy.PullThrough;
using MirrorProxy.Routing;

namespace MirrorProxy.Protocol;

internal sealed partial class RegistryHandler
{
    private async Task HandleBlobAsync(HttpContext context, Route route, string reference)
    {
        if (!OciErrors.TryParseDigest(reference, out var digest, out var digestError))
        {
            await digestError.WriteAsync(context).ConfigureAwait(false);
            return;
        }

        var result = await _blobs.GetAsync(route, digest, HttpMethods.IsHead(context.Request.Method), context.RequestAborted).ConfigureAwait(false);
        _metrics.Request(RequestKinds.Blob, result.Status switch
        {
            BlobStatus.Hit => RequestResults.Hit,
            BlobStatus.Joined => RequestResults.Coalesced,
            BlobStatus.Started or BlobStatus.Relayed => RequestResults.Miss,
            BlobStatus.NotFound => RequestResults.NotFound,
            _ => RequestResults.Error,
        }, route.Upstream.Name);

        if (!result.Found)
        {
            await WritePullFailureAsync(context, route, digest.Value, OciErrors.Blob(route, result, digest)).ConfigureAwait(false);
            return;
        }

        using (result.Body)
        {
            await SendBlobAsync(context, route, digest, result).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The one sender of blob answers: headers (with a single Range when the length is known), then the body from
    /// whatever source it has. A source that fails mid-way breaks the connection: a client never sees a short or
    /// unverified body end as if it were complete.
    /// </summary>
    private async Task SendBlobAsync(HttpContext context, Route route, Digest digest, BlobResult result)
    {
        var response = context.Response;
        response.Headers[RegistryHeaders.ContentDigest] = digest.Value;
        response.Headers.ETag = $"\"{digest.Value}\"";
        response.ContentType = MediaTypes.OctetStream;
        long offset = 0;
        var count = long.MaxValue;
        if (result.Length is { } total && (result.Body?.SupportsRanges ?? true))
        {
            response.Headers.AcceptRanges = "bytes";
            if (!WriteRange(context, total, out offset, out count))
            {
                return;
            }
        }
        else
        {
            // Unknown length, or a relay: the whole body, chunked when no length is known.
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentLength = result.Length;
        }

        if (result.Body is not { } body)
        {
            return;
        }

        try
        {
            var (sent, bytes) = await body.SendAsync(response.BodyWriter, offset, count, context.RequestAborted).ConfigureAwait(false);
            _metrics.BytesServed(bytes, body.FromCache, route.Upstream.Name);
            if (sent == SendResult.SourceFailed)
            {
                context.Abort();
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; a download goes on without it.
        }
    }

    /// <summary>Sets the status and length for a body of <paramref name="total"/> bytes, honouring a single Range. False when the answer is complete already (416).</summary>
    private static bool WriteRange(HttpContext context, long total, out long offset, out long count)
    {
        var response = context.Response;
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
}
