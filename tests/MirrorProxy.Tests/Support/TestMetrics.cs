using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using MirrorProxy.Metrics;

namespace MirrorProxy.Tests.Support;

internal static class TestMetrics
{
    private static readonly ServiceProvider Services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    /// <summary>Instruments from a real meter factory; nothing listens to them.</summary>
    public static MirrorMetrics Create() => new(Services.GetRequiredService<IMeterFactory>());
}
