using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/MirrorProxy.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
