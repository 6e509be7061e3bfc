using Microsoft.Extensions.Logging.Abstractions;
using MirrorProxy.Common;
using MirrorProxy.Resilience;
using MirrorProxy.Upstream;

namespace MirrorProxy.Tests.Support;

internal static class TestUpstreams
{
    /// <summary>Background work for probes; never stopped (tests end with the process).</summary>
    public static BackgroundWork Background { get; } = new(NullLogger<BackgroundWork>.Instance);

    /// <summary>An upstream client whose every request goes to <paramref name="handler"/>.</summary>
    public static UpstreamRegistry Create(UpstreamOptions options, HttpMessageHandler handler, bool offline = false, TimeProvider? time = null) =>
        new(options, new HttpMessageInvoker(handler), new OfflineMode(offline), Background, TestMetrics.Create(), time ?? TimeProvider.System, NullLoggerFactory.Instance);
}
