using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MirrorProxy.Benchmarks.S3;

/// <summary>The operations measured; each runs <see cref="Repeats"/> times per client per round.</summary>
internal enum Operation
{
    PutLarge,
    Put64K,
    PutIfNoneMatchExisting,
    GetRange,
    GetFull,
    Get64K,
}

/// <summary>One run of one operation: wall time, bytes allocated by the process, CPU time of the process.</summary>
internal readonly record struct Sample(double Seconds, long Allocated, double CpuMilliseconds);

/// <summary>
/// Correctness checks, then rounds in which the clients take turns (A B C, B C A, C A B, …) so that noise on the machine
/// falls on all of them alike; one warm-up round first, not counted. Prints markdown tables on standard output.
/// </summary>
internal sealed class Bench(S3Target target, IReadOnlyList<string> clientNames, int rounds)
{
    private const int Large = 64 * 1024 * 1024;
    private const int Small = 64 * 1024;
    private const long RangeOffset = 1024 * 1024;

    private static readonly Operation[] s_operations = Enum.GetValues<Operation>();

    private readonly byte[] _large = RandomNumberGenerator.GetBytes(Large);
    private readonly Dictionary<(string Client, Operation Operation), List<Sample>> _samples = [];
    private readonly List<string> _failures = [];
    private readonly Dictionary<(string Client, Operation Operation), string> _unsupported = [];
    private readonly DiscardSink _discard = new();
    private string _largeHash = "";
    private string _smallHash = "";

    private static int Repeats(Operation operation) => operation switch
    {
        Operation.PutLarge or Operation.GetRange or Operation.GetFull => 2,
        _ => 16,
    };

    private static long BytesOf(Operation operation) => operation switch
    {
        Operation.PutLarge or Operation.GetFull => Large,
        Operation.GetRange => Large - RangeOffset,
        _ => Small,
    };

    private static string Describe(Operation operation) => operation switch
    {
        Operation.PutLarge => "PUT 64 MiB (new key)",
        Operation.Put64K => "PUT 64 KiB (new key)",
        Operation.PutIfNoneMatchExisting => "PUT 64 KiB, If-None-Match: * on an existing key (412)",
        Operation.GetRange => "GET 64 MiB object, Range bytes=1048576- (63 MiB)",
        Operation.GetFull => "GET 64 MiB object, whole",
        Operation.Get64K => "GET 64 KiB object, whole",
        _ => operation.ToString(),
    };

    private ReadOnlyMemory<byte> SmallBody => _large.AsMemory(0, Small);

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        _largeHash = Convert.ToHexStringLower(SHA256.HashData(_large));
        _smallHash = Convert.ToHexStringLower(SHA256.HashData(SmallBody.Span));
        var clients = clientNames.Select(name => Clients.Create(name, target)).ToArray();
        try
        {
            var output = new StringBuilder();
            output.Append(await CheckAsync(clients, cancellationToken).ConfigureAwait(false));
            for (var round = 0; round <= rounds; round++)
            {
                Log(round == 0 ? "warm-up round" : $"round {round} of {rounds}");
                // Each round starts one client further on (A B C, B C A, C A B, …): none always follows the others' PUTs.
                foreach (var client in clients.Skip(round % clients.Length).Concat(clients.Take(round % clients.Length)))
                {
                    // Garbage left by the previous client is collected here, not inside this one's timings.
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    GC.Collect();
                    foreach (var operation in s_operations.Where(o => !_unsupported.ContainsKey((client.Name, o))))
                    {
                        for (var i = 0; i < Repeats(operation); i++)
                        {
                            var sample = await MeasureAsync(client, operation, round, i, cancellationToken).ConfigureAwait(false);
                            if (round > 0)
                            {
                                Samples(client.Name, operation).Add(sample);
                            }
                        }
                    }
                }
            }

            output.Append(Report(clients));
            Console.Write(output.ToString());
            return _failures.Count == 0 ? 0 : 1;
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    private List<Sample> Samples(string client, Operation operation)
    {
        if (!_samples.TryGetValue((client, operation), out var list))
        {
            _samples[(client, operation)] = list = [];
        }

        return list;
    }

    private static string KeyOf(IBenchClient client, string name) => $"bench/{client.Name}/{name}";

    private async Task<Sample> MeasureAsync(IBenchClient client, Operation operation, int round, int i, CancellationToken cancellationToken)
    {
        // The bodies are set up before the clock starts; the fixed objects were stored by the checks.
        var body = operation switch
        {
            Operation.PutLarge => new SourceStream(_large),
            Operation.Put64K or Operation.PutIfNoneMatchExisting => new SourceStream(SmallBody),
            _ => null,
        };
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var cpuBefore = Environment.CpuUsage.TotalTime;
        var started = Stopwatch.GetTimestamp();
        string? failure = null;
        switch (operation)
        {
            case Operation.PutLarge:
                failure = Expect(await client.PutAsync(KeyOf(client, $"r{round}/large-{i}"), body!, Large, _largeHash, false, cancellationToken).ConfigureAwait(false), PutOutcome.Stored);
                break;
            case Operation.Put64K:
                failure = Expect(await client.PutAsync(KeyOf(client, $"r{round}/small-{i}"), body!, Small, _smallHash, false, cancellationToken).ConfigureAwait(false), PutOutcome.Stored);
                break;
            case Operation.PutIfNoneMatchExisting:
                failure = Expect(await client.PutAsync(KeyOf(client, "fixed/small"), body!, Small, _smallHash, true, cancellationToken).ConfigureAwait(false), PutOutcome.PreconditionFailed);
                break;
            case Operation.GetRange:
                failure = ExpectBytes(await client.GetAsync(KeyOf(client, "fixed/large"), RangeOffset, _discard, cancellationToken).ConfigureAwait(false), Large - RangeOffset);
                break;
            case Operation.GetFull:
                failure = ExpectBytes(await client.GetAsync(KeyOf(client, "fixed/large"), 0, _discard, cancellationToken).ConfigureAwait(false), Large);
                break;
            case Operation.Get64K:
                failure = ExpectBytes(await client.GetAsync(KeyOf(client, "fixed/small"), 0, _discard, cancellationToken).ConfigureAwait(false), Small);
                break;
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        var cpu = Environment.CpuUsage.TotalTime - cpuBefore;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        if (failure is not null)
        {
            _failures.Add($"{client.Name} {Describe(operation)}, round {round}: {failure}");
        }

        return new Sample(elapsed.TotalSeconds, allocated, cpu.TotalMilliseconds);

        static string? Expect(PutOutcome outcome, PutOutcome expected) => outcome == expected ? null : $"{outcome}, expected {expected}";
        static string? ExpectBytes(long read, long expected) => read == expected ? null : $"{read} bytes, expected {expected}";
    }

    /// <summary>What each client does for the mirror's correctness, against the real store; stores the fixed objects the rounds read.</summary>
    private async Task<string> CheckAsync(IBenchClient[] clients, CancellationToken cancellationToken)
    {
        var names = clients.Select(c => c.Name).ToArray();
        var rows = new List<(string Check, string[] Results)>
        {
            ("conditional PUT (If-None-Match: *) of a new 64 KiB key", new string[clients.Length]),
            ("the same again: refused with 412", new string[clients.Length]),
            ("conditional PUT of 64 MiB on an existing key: refused with 412", new string[clients.Length]),
            ("PUT 64 KiB signed with a SHA-256 that is not the body's: refused by the store", new string[clients.Length]),
            ("GET whole 64 MiB, ranged GET from 1 MiB: the bytes PUT (SHA-256)", new string[clients.Length]),
        };
        using var hash = new HashSink();
        var wrong = Convert.ToHexStringLower(SHA256.HashData("not the body"u8));
        for (var c = 0; c < clients.Length; c++)
        {
            var client = clients[c];
            Log($"checks: {client.Name}");
            await client.CreateBucketAsync(cancellationToken).ConfigureAwait(false);
            var smallKey = KeyOf(client, "fixed/small");
            var largeKey = KeyOf(client, "fixed/large");

            rows[0].Results[c] = Show(await TryPutAsync(client, smallKey, SmallBody, _smallHash, true, cancellationToken).ConfigureAwait(false), PutOutcome.Stored);
            rows[1].Results[c] = Show(await TryPutAsync(client, smallKey, SmallBody, _smallHash, true, cancellationToken).ConfigureAwait(false), PutOutcome.PreconditionFailed);
            await client.PutAsync(largeKey, new SourceStream(_large), Large, _largeHash, false, cancellationToken).ConfigureAwait(false);
            rows[2].Results[c] = Show(await TryPutAsync(client, largeKey, _large, _largeHash, true, cancellationToken).ConfigureAwait(false), PutOutcome.PreconditionFailed);
            rows[3].Results[c] = Show(await TryPutAsync(client, KeyOf(client, "fixed/wrong"), SmallBody, wrong, false, cancellationToken).ConfigureAwait(false), PutOutcome.Refused);

            var whole = await TryGetAsync(client, largeKey, 0, hash, _largeHash, cancellationToken).ConfigureAwait(false);
            var ranged = await TryGetAsync(client, largeKey, RangeOffset, hash, Convert.ToHexStringLower(SHA256.HashData(_large.AsSpan((int)RangeOffset))), cancellationToken)
                .ConfigureAwait(false);
            rows[4].Results[c] = whole is null && ranged is null ? "yes" : $"no: {(whole is null ? "whole ok" : "whole " + whole)}, {(ranged is null ? "ranged ok" : "ranged " + ranged)}";

            // What does not work is not timed (its row says why).
            if (rows[1].Results[c] != "yes")
            {
                _unsupported[(client.Name, Operation.PutIfNoneMatchExisting)] = "no 412";
            }

            if (whole is not null)
            {
                _unsupported[(client.Name, Operation.GetFull)] = "fails";
                _unsupported[(client.Name, Operation.Get64K)] = "fails";
            }

            if (ranged is not null)
            {
                _unsupported[(client.Name, Operation.GetRange)] = "fails";
            }
        }

        var text = new StringBuilder();
        text.Append("Correctness against the store (each check once per client):\n\n");
        text.Append("| check | ").AppendJoin(" | ", names).Append(" |\n|---|").Append(string.Concat(Enumerable.Repeat("---|", names.Length))).Append('\n');
        foreach (var (check, results) in rows)
        {
            text.Append("| ").Append(check).Append(" | ").AppendJoin(" | ", results).Append(" |\n");
        }

        text.Append("\nSet-up:\n\n");
        foreach (var client in clients)
        {
            text.Append("- ").Append(client.Name).Append(": ").Append(client.Setup).Append('\n');
        }

        return text.ToString();

        static string Show(string outcome, PutOutcome expected) => outcome == expected.ToString() ? "yes" : $"no: {outcome}";
    }

    /// <summary>Null when the GET returned the expected bytes, else what happened.</summary>
    private static async Task<string?> TryGetAsync(IBenchClient client, string key, long offset, HashSink hash, string expected, CancellationToken cancellationToken)
    {
        try
        {
            var read = await client.GetAsync(key, offset, hash, cancellationToken).ConfigureAwait(false);
            return hash.HexAndReset() == expected ? null : $"returned other bytes ({read})";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            hash.HexAndReset();
            return $"{ex.GetType().Name}";
        }
    }

    private static async Task<string> TryPutAsync(IBenchClient client, string key, ReadOnlyMemory<byte> body, string hash, bool ifNoneMatch, CancellationToken cancellationToken)
    {
        try
        {
            return (await client.PutAsync(key, new SourceStream(body), body.Length, hash, ifNoneMatch, cancellationToken).ConfigureAwait(false)).ToString();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return $"{ex.GetType().Name}: {ex.Message.Split('\n')[0]}";
        }
    }

    private string Report(IBenchClient[] clients)
    {
        var names = clients.Select(c => c.Name).ToArray();
        var header = new StringBuilder().Append("| operation | ").AppendJoin(" | ", names).Append(" |\n|---|")
            .Append(string.Concat(Enumerable.Repeat("---|", names.Length))).Append('\n').ToString();
        var text = new StringBuilder();

        text.Append(CultureInfo.InvariantCulture, $"\nThroughput, MB/s (10^6 bytes), median (min) over {rounds} rounds × repeats; the conditional PUT as latency, ms, median (max):\n\n").Append(header);
        foreach (var operation in s_operations)
        {
            text.Append("| ").Append(Describe(operation)).Append(CultureInfo.InvariantCulture, $", ×{Repeats(operation)} per round |");
            foreach (var name in names)
            {
                var samples = Samples(name, operation);
                if (_unsupported.TryGetValue((name, operation), out var why))
                {
                    text.Append(' ').Append(why).Append(" |");
                }
                else if (operation == Operation.PutIfNoneMatchExisting)
                {
                    var ms = samples.Select(s => s.Seconds * 1000).ToArray();
                    text.Append(CultureInfo.InvariantCulture, $" {Median(ms):F1} ({ms.Max():F1}) |");
                }
                else
                {
                    var rates = samples.Select(s => BytesOf(operation) / s.Seconds / 1e6).ToArray();
                    text.Append(' ').Append(Rate(Median(rates))).Append(" (").Append(Rate(rates.Min())).Append(") |");
                }
            }

            text.Append('\n');
        }

        text.Append("\nLatency, ms, median:\n\n").Append(header);
        AppendRows(text, names, s => s.Seconds * 1000, v => v.ToString(v < 10 ? "F2" : "F1", CultureInfo.InvariantCulture));

        text.Append("\nAllocated per operation (GC.GetTotalAllocatedBytes, whole process), median:\n\n").Append(header);
        AppendRows(text, names, s => s.Allocated, Bytes);

        text.Append("\nCPU time of the client process per operation (user + system, all threads), ms, median:\n\n").Append(header);
        AppendRows(text, names, s => s.CpuMilliseconds, v => v.ToString("F1", CultureInfo.InvariantCulture));

        if (_failures.Count > 0)
        {
            text.Append("\nFailures (the figures above include these operations):\n\n");
            foreach (var failure in _failures.Distinct().Take(40))
            {
                text.Append("- ").Append(failure).Append('\n');
            }
        }

        return text.ToString();
    }

    private void AppendRows(StringBuilder text, string[] names, Func<Sample, double> value, Func<double, string> format)
    {
        foreach (var operation in s_operations)
        {
            text.Append("| ").Append(Describe(operation)).Append(" |");
            foreach (var name in names)
            {
                text.Append(' ').Append(_unsupported.TryGetValue((name, operation), out var why) ? why : format(Median(Samples(name, operation).Select(value).ToArray()))).Append(" |");
            }

            text.Append('\n');
        }
    }

    private static double Median(double[] values)
    {
        if (values.Length == 0)
        {
            return double.NaN;
        }

        Array.Sort(values);
        var middle = values.Length / 2;
        return values.Length % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
    }

    private static string Rate(double megabytesPerSecond) => megabytesPerSecond.ToString(megabytesPerSecond < 10 ? "F1" : "F0", CultureInfo.InvariantCulture);

    private static string Bytes(double bytes) => bytes switch
    {
        >= 1024 * 1024 => (bytes / (1024 * 1024)).ToString("F1", CultureInfo.InvariantCulture) + " MiB",
        >= 1024 => (bytes / 1024).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString("F0", CultureInfo.InvariantCulture) + " B",
    };

    private static void Log(string message) => Console.Error.WriteLine($"{TimeProvider.System.GetLocalNow():HH:mm:ss} {message}");
}
