using BenchmarkDotNet.Running;
using MirrorProxy.Benchmarks.Scale;

// dotnet run -c Release --project benchmarks/MirrorProxy.Benchmarks -- --filter '*'
// dotnet run -c Release --project benchmarks/MirrorProxy.Benchmarks -- generate-cache DIR OBJECTS [TAGS]
// dotnet run -c Release --project benchmarks/MirrorProxy.Benchmarks -- index-churn DIR UPDATES TAGS
// dotnet run -c Release --project benchmarks/MirrorProxy.Benchmarks -- hit-latency BASE-URL OBJECTS COUNT [SEED]
return args.FirstOrDefault() switch
{
    "generate-cache" => await CacheGenerator.RunAsync(args[1..]),
    "index-churn" => await IndexChurn.RunAsync(args[1..]),
    "hit-latency" => await HitLatency.RunAsync(args[1..]),
    "object-digest" => PrintDigest(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
    _ => Run(args),
};

static int PrintDigest(int i)
{
    Console.WriteLine(MirrorProxy.Oci.Digest.ComputeSha256(CacheGenerator.Content(i)));
    return 0;
}

static int Run(string[] args)
{
    BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    return 0;
}
