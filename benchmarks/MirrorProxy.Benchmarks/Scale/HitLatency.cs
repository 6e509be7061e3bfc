using System.Diagnostics;
using System.Globalization;
using MirrorProxy.Oci;

namespace MirrorProxy.Benchmarks.Scale;

/// <summary>
/// <c>hit-latency BASE-URL OBJECTS COUNT [SEED]</c>: requests COUNT objects of a generated cache (see
/// <see cref="CacheGenerator"/>) chosen at random among OBJECTS, one after another, from a mirror at BASE-URL, and
/// checks each against its content. Prints the latency percentiles of the objects served, and how many were served,
/// not served (evicted, say) or wrong. Used by benchmarks/scale/run.sh for the first look-ups after a start and the
/// requests made while an eviction pass runs.
/// </summary>
internal static class HitLatency
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 3 || !int.TryParse(args[1], CultureInfo.InvariantCulture, out var objects) || !int.TryParse(args[2], CultureInfo.InvariantCulture, out var count))
        {
            Console.Error.WriteLine("usage: hit-latency BASE-URL OBJECTS COUNT [SEED]");
            return 2;
        }

        var random = new Random(args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1);
        using var http = new HttpClient { BaseAddress = new Uri(args[0]), Timeout = TimeSpan.FromSeconds(10) };
        // The connection is opened before the clock starts: what is timed is the mirror's answer.
        using (await http.GetAsync("readyz"))
        {
        }

        var served = new List<double>(count);
        int missing = 0, wrong = 0;
        for (var i = 0; i < count; i++)
        {
            var content = CacheGenerator.Content(random.Next(objects));
            var watch = Stopwatch.StartNew();
            using var response = await http.GetAsync($"v2/scale/app/blobs/{Digest.ComputeSha256(content)}?ns=bench.local");
            var body = await response.Content.ReadAsByteArrayAsync();
            var elapsed = watch.Elapsed.TotalMilliseconds;
            if (!response.IsSuccessStatusCode)
            {
                missing++;
            }
            else if (!body.AsSpan().SequenceEqual(content))
            {
                wrong++;
            }
            else
            {
                served.Add(elapsed);
            }
        }

        served.Sort();
        double At(double quantile) => served.Count == 0 ? double.NaN : served[Math.Min(served.Count - 1, (int)(quantile * served.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{served.Count} served: p50 {At(0.5):0.00} ms, p99 {At(0.99):0.00} ms, max {At(1):0.00} ms; {missing} not served, {wrong} wrong"));
        return wrong == 0 ? 0 : 1;
    }
}
