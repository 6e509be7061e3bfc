using System.CommandLine;

namespace MirrorProxy.Cli;

internal static class MirrorProxyCli
{
    public static RootCommand Create() => new("MirrorProxy: a pull-through OCI registry mirror for clusters that must keep running offline.")
    {
        ServeCommand.Create(),
        CheckCommand.Create(),
        WarmCommand.Create(),
        HealthCommand.Create(),
        BundleCommand.Create(),
    };
}
