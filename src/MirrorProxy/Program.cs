using MirrorProxy.Cli;

// A command line that does not parse is a usage error: exit 2, as every command documents.
var parse = MirrorProxyCli.Create().Parse(args);
var exit = await parse.InvokeAsync();
return parse.Errors.Count > 0 ? 2 : exit;
