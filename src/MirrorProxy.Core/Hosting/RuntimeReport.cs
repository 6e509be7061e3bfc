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
        long Setting(string key, long absent) => gc.TryGetValue(key, out var value) ? Convert.ToInt64(value, CultureInfo.InvariantCulture) : absent;

        var heaps = Setting("HeapCount", 1);
        var adaptive = GCSettings.IsServerGC && Setting("GCDynamicAdaptationMode", 0) == 1;
        var gen0MaxBudget = Setting("GCGen0MaxBudget", 0);
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
