using System.Runtime.InteropServices;
using MirrorProxy.IntegrationTests.Infrastructure;
using MirrorProxy.IntegrationTests.Support;

namespace MirrorProxy.IntegrationTests;

/// <summary>The real program, as built, runs the GC configuration the benchmarks measured.</summary>
public sealed class ProgramRuntimeTests : IDisposable
{
    private readonly TempDirectory _work = new("runtime");

    public void Dispose() => _work.Dispose();

    [Fact]
    public async Task Program_RunsTheServerGcWithDatasAndTheGen0Cap()
    {
        await using var mirror = await MirrorProcess.StartAsync(_work.Combine("cache"), ["--upstream", "docker.io=http://127.0.0.1:1"]);

        var runtime = await mirror.RuntimeLineAsync();

        Assert.Contains($" {RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}, ", runtime, StringComparison.Ordinal);
        Assert.Contains(", server (DATAS) GC ", runtime, StringComparison.Ordinal);
        Assert.Contains("a gen0 budget of at most 8 MiB", runtime, StringComparison.Ordinal);
    }
}
