using System.Runtime;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using MirrorProxy.Hosting;

namespace MirrorProxy.Tests.Hosting;

public sealed class RuntimeReportTests
{
    [Fact]
    public void Write_NamesThisProcesssArchitectureCompilationAndGc()
    {
        var logger = new CapturingLogger();

        RuntimeReport.Write(logger);

        var line = Assert.Single(logger.Lines);
        Assert.Contains(RuntimeInformation.FrameworkDescription, line, StringComparison.Ordinal);
        Assert.Contains(" " + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant() + ", JIT, ", line, StringComparison.Ordinal);
        Assert.Contains(GCSettings.IsServerGC ? ", server" : ", workstation GC", line, StringComparison.Ordinal);
        var budget = Convert.ToInt64(GC.GetConfigurationVariables()["GCGen0MaxBudget"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains($" a gen0 budget of at most {budget >> 20} MiB,", line, StringComparison.Ordinal);
        Assert.EndsWith($", {Environment.ProcessorCount} processors", line, StringComparison.Ordinal);
    }

    private sealed class CapturingLogger : ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }
}
