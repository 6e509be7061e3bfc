using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;

namespace MirrorProxy.Status;

/// <summary>
/// Renders a <see cref="StatusSnapshot"/> as one self-contained HTML page: inline styles, no script, no external
/// asset (it must work on a ship with no internet), reloading itself every <see cref="RefreshSeconds"/> seconds,
/// readable on a phone. Every text that comes from configuration or from clients is HTML-encoded.
/// </summary>
internal static class StatusPage
{
    public const int RefreshSeconds = 30;

    private const string Style = """
        :root{color-scheme:light dark;--ok:#1b7f3b;--bad:#b3261e;--warn:#8a5a00;--line:#8884}
        *{box-sizing:border-box}
        body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:60rem;padding:1rem}
        h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem;border-bottom:1px solid var(--line)}
        #verdict{border-radius:.5rem;padding:1rem;color:#fff}#verdict.ok{background:var(--ok)}#verdict.bad{background:var(--bad)}
        #verdict ul{margin:.4rem 0 0;padding-left:1.2rem}.meta{font-size:.85rem;opacity:.85}
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
        td,th,li,p{overflow-wrap:anywhere;word-break:break-word}
        .state{font-weight:600}.healthy,.complete{color:var(--ok)}.down,.missing{color:var(--bad)}.probing,.offline{color:var(--warn)}
        .bar{height:.8rem;border:1px solid var(--line);border-radius:.4rem;overflow:hidden}.bar>span{display:block;height:100%;background:var(--ok)}
        .bar.full>span{background:var(--bad)}
        """;

    public static string Render(StatusSnapshot snapshot)
    {
        var html = new StringBuilder(8 * 1024);
        html.Append("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append(CultureInfo.InvariantCulture, $"<meta http-equiv=\"refresh\" content=\"{RefreshSeconds}\">")
            .Append("<title>").Append(snapshot.Verdict.CanSail ? "Ready" : "Not ready").Append(" – MirrorProxy</title><style>")
            .Append(Style).Append("</style></head><body>\n");

        Verdict(html, snapshot);
        Upstreams(html, snapshot);
        Cache(html, snapshot.Cache);
        Pins(html, snapshot);
        Failures(html, snapshot);
        html.Append("</body></html>\n");
        return html.ToString();
    }

    private static void Verdict(StringBuilder html, StatusSnapshot snapshot)
    {
        var verdict = snapshot.Verdict;
        html.Append("<header id=\"verdict\" class=\"").Append(verdict.CanSail ? "ok" : "bad")
            .Append("\" data-can-sail=\"").Append(verdict.CanSail ? "true" : "false").Append("\"><h1>")
            .Append(verdict.CanSail ? "Ready to sail" : "Not ready to sail").Append("</h1>");
        html.Append(verdict.CanSail
            ? "<p>Every pinned image is in the cache: the cluster can start them with no internet.</p>"
            : "<ul>");
        if (!verdict.CanSail)
        {
            foreach (var reason in verdict.Reasons)
            {
                html.Append("<li>").Append(Encode(reason)).Append("</li>");
            }

            html.Append("</ul>");
        }

        html.Append("<p class=\"meta\">As of ").Append(Time(snapshot.TakenAt))
            .Append(CultureInfo.InvariantCulture, $"; this page refreshes every {RefreshSeconds} s.</p></header>\n");
    }

    private static void Upstreams(StringBuilder html, StatusSnapshot snapshot)
    {
        html.Append("<section id=\"upstreams\"><h2>Internet registries</h2>")
            .Append("<p id=\"offline\" data-offline=\"").Append(snapshot.Offline ? "true" : "false").Append("\">Offline switch: <b>")
            .Append(snapshot.Offline ? "on</b> (the mirror serves its cache only and never dials out)" : "off</b> (registries are asked when the cache lacks something)")
            .Append("</p><table><thead><tr><th>Registry</th><th>State</th><th>Address</th></tr></thead><tbody>");
        foreach (var upstream in snapshot.Upstreams)
        {
            var state = Encode(upstream.State);
            html.Append("<tr data-upstream=\"").Append(Encode(upstream.Name)).Append("\" data-state=\"").Append(state).Append("\"><td>")
                .Append(Encode(upstream.Name)).Append("</td><td class=\"state ").Append(state).Append("\">").Append(StateWords(upstream.State))
                .Append("</td><td>").Append(Encode(upstream.Url)).Append("</td></tr>");
        }

        html.Append("</tbody></table><p class=\"meta\">An unreachable registry does not stop the mirror: what it has cached is still served.</p></section>\n");
    }

    private static void Cache(StringBuilder html, CacheStatus cache)
    {
        html.Append("<section id=\"cache\"><h2>Cache</h2>");
        html.Append("<p>Holds <b data-used-bytes=\"").Append(Number(cache.UsedBytes)).Append("\">").Append(Bytes(cache.UsedBytes)).Append("</b> in ")
            .Append(Number(cache.Objects)).Append(" objects");
        if (cache.BudgetBytes is { } budget && budget > 0)
        {
            var percent = Math.Clamp(cache.UsedBytes * 100.0 / budget, 0, 100);
            html.Append(" of a budget of <b data-budget-bytes=\"").Append(Number(budget)).Append("\">").Append(Bytes(budget)).Append("</b> (")
                .Append(percent.ToString("0", CultureInfo.InvariantCulture)).Append("%).</p>")
                .Append("<div class=\"bar").Append(percent >= 95 ? " full" : "").Append("\" role=\"img\" aria-label=\"cache use\"><span style=\"width:")
                .Append(percent.ToString("0.#", CultureInfo.InvariantCulture)).Append("%\"></span></div>");
        }
        else
        {
            html.Append(" (no size budget: it grows until the disk is full).</p>");
        }

        var low = cache.FreeDiskBytes < cache.MinFreeDiskBytes;
        html.Append("<p id=\"disk\" data-free-bytes=\"").Append(Number(cache.FreeDiskBytes)).Append("\">Free disk: <b class=\"")
            .Append(low ? "missing" : "complete").Append("\">").Append(Bytes(cache.FreeDiskBytes)).Append("</b> (the mirror needs at least ")
            .Append(Bytes(cache.MinFreeDiskBytes)).Append(").</p>");
        html.Append("<p id=\"writable\" data-writable=\"").Append(cache.Writable ? "true" : "false").Append("\">")
            .Append(cache.Writable ? "The cache can be written." : "<b class=\"missing\">The cache cannot be written.</b>").Append("</p></section>\n");
    }

    private static void Pins(StringBuilder html, StatusSnapshot snapshot)
    {
        html.Append("<section id=\"pins\"><h2>Pinned images</h2>");
        if (snapshot.LastWarmUp is { } warm)
        {
            html.Append("<p id=\"warmup\" data-at=\"").Append(warm.At.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)).Append("\">Last warm-up: ")
                .Append(Time(warm.At)).Append(" (pin set ").Append(Encode(warm.PinSet)).Append(warm.Complete ? ", complete" : ", incomplete now").Append(").</p>");
        }
        else
        {
            html.Append("<p id=\"warmup\">No warm-up has run: nothing is pinned.</p>");
        }

        foreach (var set in snapshot.PinSets)
        {
            html.Append("<div class=\"pinset\" data-pin-set=\"").Append(Encode(set.Name)).Append("\" data-missing=\"").Append(Number(set.MissingObjects))
                .Append("\"><h3>").Append(Encode(set.Name)).Append("</h3><p><span class=\"state ").Append(set.Complete ? "complete\">Complete" : "missing\">Incomplete")
                .Append("</span>: ").Append(Number(set.Images)).Append(set.Images == 1 ? " image, " : " images, ").Append(Number(set.Objects - set.MissingObjects)).Append(" of ")
                .Append(Number(set.Objects)).Append(" objects cached; platforms ").Append(Encode(set.Platforms)).Append("; written ").Append(Time(set.UpdatedAt)).Append(".</p>");
            if (set.IncompleteImages.Count > 0)
            {
                html.Append("<table><thead><tr><th>Image</th><th>Missing</th></tr></thead><tbody>");
                foreach (var image in set.IncompleteImages)
                {
                    html.Append("<tr class=\"incomplete\"><td>").Append(Encode(image.Image)).Append("</td><td>").Append(Encode(image.Problem)).Append("</td></tr>");
                }

                html.Append("</tbody></table>");
                if (set.MoreIncomplete)
                {
                    html.Append("<p class=\"meta\">More images are incomplete; <code>mirrorproxy check</code> lists them all.</p>");
                }
            }

            html.Append("</div>");
        }

        html.Append("</section>\n");
    }

    private static void Failures(StringBuilder html, StatusSnapshot snapshot)
    {
        html.Append("<section id=\"failures\" data-total=\"").Append(Number(snapshot.FailuresSinceStart))
            .Append("\"><h2>Recent pulls the mirror could not serve</h2>");
        if (snapshot.RecentFailures.Count == 0)
        {
            html.Append("<p>None since the mirror started.</p></section>\n");
            return;
        }

        html.Append(CultureInfo.InvariantCulture, $"<p class=\"meta\">{snapshot.FailuresSinceStart} since the mirror started; the last {snapshot.RecentFailures.Count} below, newest first. ")
            .Append("Images not in the cache cannot be pulled while the registries are unreachable.</p>")
            .Append("<table><thead><tr><th>When</th><th>Image</th><th>Answer</th></tr></thead><tbody>");
        foreach (var failure in snapshot.RecentFailures)
        {
            var separator = failure.Reference.Contains(':', StringComparison.Ordinal) ? "@" : ":";
            html.Append("<tr class=\"failure\"><td>").Append(Time(failure.At)).Append("</td><td>").Append(Encode(failure.Upstream)).Append('/')
                .Append(Encode(failure.Repository)).Append(separator).Append(Encode(failure.Reference)).Append("</td><td>")
                .Append(Number(failure.Status)).Append(' ').Append(Encode(failure.Message)).Append("</td></tr>");
        }

        html.Append("</tbody></table></section>\n");
    }

    private static string StateWords(string state) => state switch
    {
        "healthy" => "reachable",
        "down" => "unreachable",
        "probing" => "checking",
        "offline" => "offline (switch on)",
        _ => Encode(state),
    };

    private static string Encode(string text) => HtmlEncoder.Default.Encode(text);

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    internal static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0 ? $"{bytes} B" : value.ToString(value < 10 ? "0.0" : "0", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}
