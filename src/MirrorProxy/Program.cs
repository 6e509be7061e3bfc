using MirrorProxy.Cli;

return await MirrorProxyCli.InvokeAsync(args);
