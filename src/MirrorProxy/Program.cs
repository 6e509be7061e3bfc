using MirrorProxy.Cli;

return await MirrorProxyCli.Create().Parse(args).InvokeAsync();
