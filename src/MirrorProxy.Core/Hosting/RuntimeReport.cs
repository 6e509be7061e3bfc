using System.Globalization;
using System.Runtime;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace MirrorProxy.Hosting;

/// <summary>
/// One start-up line saying how this process runs (architecture, JIT or Native AOT, which GC and its gen0 cap), so that a
/// node's log tells which build and memory behaviour an operator is looking at.
/// </summary>
internal static partial class RuntimeReport
{
    public static void Write(ILogger logger)
    {
        var gc = GC.GetConfigurationVariables();
        var heaps = gc.TryGetValue("HeapCount", out var count) ? Convert.ToInt64(count, CultureInfo.InvariantCulture) : 1;
        var adaptive = GCSettings.IsServerGC && gc.TryGetValue("GCDynamicAdaptationMode", out var mode)
            && Convert.ToInt64(mode, CultureInfo.InvariantCulture) == 1;
        var gen0MaxBudget = gc.TryGetValue("GCGen0MaxBudget", out var budget) ? Convert.ToInt64(budget, CultureInfo.InvariantCulture) : 0;
        Log.Runtime(logger,
            RuntimeInformation.FrameworkDescription,
            RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(),
            RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "Native AOT",
            GCSettings.IsServerGC ? (adaptive ? "server (DATAS)" : "server") : "workstation",
            heaps,
            gen0MaxBudget >> 20,
            Environment.ProcessorCount);
    }

    private static partial class Log
    {
        [LoggerMessage(8001, LogLevel.Information, "Running on {Framework} {Architecture}, {Compilation}, {Gc} GC with at most {Heaps} heaps and a gen0 budget of at most {Gen0MaxBudgetMiB} MiB, {Processors} processors")]
        public static partial void Runtime(ILogger logger, string framework, string architecture, string compilation, string gc, long heaps, long gen0MaxBudgetMiB, int processors);
    }
}
