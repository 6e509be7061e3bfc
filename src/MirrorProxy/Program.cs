using System.CommandLine;
using MirrorProxy.Cli;

var root = new RootCommand("MirrorProxy: a pull-through OCI registry mirror for clusters that must keep running offline.")
{
    ServeCommand.Create(),
};

return await root.Parse(args).InvokeAsync();
