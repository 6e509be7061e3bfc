using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace MirrorProxy.Helm;

/// <summary>
/// Writes an index keeping only the chart versions a predicate keeps (and only the charts left with one), for
/// <c>HelmOfflineIndex: Held</c>. Events go from YamlDotNet's parser to its emitter, so the result is the same YAML
/// written afresh (comments and layout are not kept; values, digests included, are). One chart's events are held
/// at a time.
/// </summary>
internal static class HelmIndexFilter
{
    public static IndexScanStatus Filter(TextReader input, TextWriter output, Func<string, string?, string?, bool> keep)
    {
        var parser = new Parser(input);
        var emitter = new Emitter(output, bestIndent: 2, bestWidth: int.MaxValue);
        var depth = 0;
        var entriesDepth = -1;
        var rootKeyIsEntries = false;
        var expectRootKey = false;
        List<ParsingEvent>? chart = null;
        try
        {
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                if (chart is not null)
                {
                    chart.Add(current);
                    if (current is MappingStart or SequenceStart)
                    {
                        depth++;
                    }
                    else if (current is MappingEnd or SequenceEnd)
                    {
                        depth--;
                    }

                    if (depth == entriesDepth && chart.Count >= 2)
                    {
                        // The chart's value is complete (a scalar key, then a whole sequence): filter and write it.
                        EmitChart(chart, emitter, keep);
                        chart = null;
                    }

                    continue;
                }

                switch (current)
                {
                    case MappingStart or SequenceStart:
                        depth++;
                        if (depth == 2 && rootKeyIsEntries && current is MappingStart)
                        {
                            entriesDepth = 2;
                        }

                        expectRootKey = depth == 1;
                        break;
                    case MappingEnd or SequenceEnd:
                        if (depth == entriesDepth)
                        {
                            entriesDepth = -1;
                        }

                        depth--;
                        if (depth == 1)
                        {
                            expectRootKey = true;
                            rootKeyIsEntries = false;
                        }

                        break;
                    case Scalar scalar when depth == 1:
                        if (expectRootKey)
                        {
                            rootKeyIsEntries = scalar.Value == "entries";
                        }

                        expectRootKey = !expectRootKey;
                        break;
                    case Scalar when depth == entriesDepth:
                        chart = [current];
                        continue;
                }

                emitter.Emit(current);
            }
        }
        catch (YamlException)
        {
            return IndexScanStatus.NotYaml;
        }

        return IndexScanStatus.Ok;
    }

    /// <summary>Writes a chart's key and the versions kept, or nothing when none is.</summary>
    private static void EmitChart(List<ParsingEvent> events, IEmitter emitter, Func<string, string?, string?, bool> keep)
    {
        var name = ((Scalar)events[0]).Value;
        if (events[1] is not SequenceStart)
        {
            foreach (var e in events)
            {
                emitter.Emit(e);
            }

            return;
        }

        var kept = new List<ParsingEvent>();
        var i = 2;
        while (i < events.Count - 1)
        {
            // One version: a mapping (or anything else, kept as it is) from here to its end.
            var start = i;
            var depth = 0;
            string? version = null;
            string? digest = null;
            string? key = null;
            do
            {
                switch (events[i])
                {
                    case MappingStart or SequenceStart:
                        depth++;
                        break;
                    case MappingEnd or SequenceEnd:
                        depth--;
                        break;
                    case Scalar scalar when depth == 1:
                        if (key is null)
                        {
                            key = scalar.Value;
                        }
                        else
                        {
                            if (key == "version")
                            {
                                version = scalar.Value;
                            }
                            else if (key == "digest")
                            {
                                digest = scalar.Value;
                            }

                            key = null;
                        }

                        break;
                }

                if (depth == 1 && events[i] is MappingEnd or SequenceEnd)
                {
                    key = null; // a key whose value was a mapping or a sequence
                }

                i++;
            }
            while (depth > 0 && i < events.Count - 1);

            if (events[start] is not MappingStart || keep(name, version, digest))
            {
                kept.AddRange(events.Skip(start).Take(i - start));
            }
        }

        if (kept.Count == 0)
        {
            return;
        }

        emitter.Emit(events[0]);
        emitter.Emit(events[1]);
        foreach (var e in kept)
        {
            emitter.Emit(e);
        }

        emitter.Emit(events[^1]);
    }
}
