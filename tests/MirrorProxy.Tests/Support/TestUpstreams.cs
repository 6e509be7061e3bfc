using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Resilience;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Support;

internal static class TestUpstreams
{
    /// <summary>An upstream client whose every request goes to <paramref name="handler"/>.</summary>
    public static UpstreamRegistry Create(UpstreamOptions options, HttpMessageHandler handler, bool offline = false) =>
        new(options, new HttpMessageInvoker(handler), new OfflineMode(offline), TestMetrics.Create(), TimeProvider.System, NullLoggerFactory.Instance);
}
