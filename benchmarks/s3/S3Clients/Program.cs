using System.Globalization;
using System.Security.Cryptography;
using MirrorProxy.Benchmarks.S3;

// The S3 endpoint and user come from S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (benchmarks/s3/run.sh starts a Ceph RGW
// and sets them).
//   bench [--rounds N] [--clients own,aws,aws-chunked,minio] [--bucket NAME]   checks, then the measured rounds
//   probe [--bucket NAME]                                                    PUT and GET of 1 MiB and 16 MiB per client compiled in
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

var mode = args.FirstOrDefault() ?? "bench";
var rounds = int.Parse(Option("--rounds") ?? "5", CultureInfo.InvariantCulture);
if (rounds < 1)
{
    return Usage();
}

var bucket = Option("--bucket") ?? "bench";
var clients = Option("--clients")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [.. Clients.Available];
var target = S3Target.FromEnvironment(bucket);

return mode switch
{
    "bench" => await new Bench(target, clients, rounds).RunAsync(cancel.Token),
    "probe" => await ProbeAsync(target, cancel.Token),
    _ => Usage(),
};

string? Option(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}

static int Usage()
{
    Console.Error.WriteLine("usage: MirrorProxy.Benchmarks.S3 bench [--rounds N] [--clients a,b] [--bucket NAME] | probe [--bucket NAME]");
    return 2;
}

// What the Native AOT build is asked to do, with each client compiled in: create the bucket, PUT 1 MiB and 16 MiB (a
// multipart upload for Minio) and read each back whole, checking its SHA-256; then a conditional PUT on the existing key.
// One line; exit code 0 when every PUT and GET worked (a conditional PUT that is not refused is reported, not failed).
static async Task<int> ProbeAsync(S3Target target, CancellationToken cancellationToken)
{
    var failed = 0;
    var lines = new List<string>();
    foreach (var name in Clients.Available)
    {
        var results = new List<string>();
        try
        {
            using var client = Clients.Create(name, target);
            await client.CreateBucketAsync(cancellationToken).ConfigureAwait(false);
            foreach (var size in new[] { 1 << 20, 16 << 20 })
            {
                var body = RandomNumberGenerator.GetBytes(size);
                var hash = Convert.ToHexStringLower(SHA256.HashData(body));
                var key = $"probe/{name}/{Guid.NewGuid():N}";
                var put = await client.PutAsync(key, new SourceStream(body), size, hash, false, cancellationToken).ConfigureAwait(false);
                using var sink = new HashSink();
                var read = await client.GetAsync(key, 0, sink, cancellationToken).ConfigureAwait(false);
                var same = put == PutOutcome.Stored && read == size && sink.HexAndReset() == hash;
                results.Add($"PUT+GET {size >> 20} MiB {(same ? "yes" : $"NO ({put}, {read} bytes)")}");
                failed += same ? 0 : 1;
                if (size == 1 << 20)
                {
                    var again = await client.PutAsync(key, new SourceStream(body), size, hash, true, cancellationToken).ConfigureAwait(false);
                    results.Add($"conditional PUT on it {(again == PutOutcome.PreconditionFailed ? "412" : again.ToString())}");
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            results.Add($"NO ({ex.GetType().Name}: {ex.Message.Split('\n')[0]})");
            failed++;
        }

        lines.Add($"{name}: {string.Join(", ", results)}");
    }

    Console.WriteLine(string.Join("; ", lines));
    return failed == 0 ? 0 : 1;
}
