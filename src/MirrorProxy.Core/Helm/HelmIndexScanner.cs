using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace MirrorProxy.Helm;

/// <summary>One chart version as an index lists it (the chart is its key under <c>entries</c>).</summary>
internal sealed class IndexEntry
{
    public string Chart { get; set; } = "";

    public string? Version { get; set; }

    /// <summary>The <c>digest</c> as written: hex, or <c>sha256:</c> and hex.</summary>
    public string? Digest { get; set; }

    public List<IndexUrl> Urls { get; } = [];
}

/// <summary>One of an entry's <c>urls</c>, with where it stands in the text.</summary>
internal readonly record struct IndexUrl(string Value, long Start, long End, ScalarStyle Style);

internal enum IndexScanStatus
{
    Ok,
    /// <summary>Not YAML (or JSON) at all.</summary>
    NotYaml,
    /// <summary>YAML, but not a chart index (an HTML page parses as one long string, say).</summary>
    NotAnIndex,
    /// <summary>One chart version takes more text than any real index entry does.</summary>
    EntryTooLarge,
}

/// <summary>
/// Reads a Helm repository index (YAML, or JSON, which Helm also accepts) as a stream of parser events, hands each
/// chart version (<c>entries.&lt;chart&gt;[i]</c>) to a callback, and optionally writes the text out again with each
/// version's <c>urls</c> replaced by what the callback returns. Everything else is copied character for character
/// (digests, metadata, comments, layout): the output is the upstream's index with other URLs. Memory holds one
/// chart version's text at a time, never the index. YamlDotNet's parser is used below its object model: no
/// reflection, so the Native AOT build has no warning from it.
/// </summary>
internal static class HelmIndexScanner
{
    private enum Role
    {
        Other,
        Root,
        Entries,
        ChartVersions,
        Version,
        Urls,
    }

    private sealed class Frame(Role role, bool isMapping)
    {
        public Role Role { get; } = role;

        public bool IsMapping { get; } = isMapping;

        public bool ExpectKey { get; set; } = isMapping;

        public string? Key { get; set; }
    }

    /// <summary>
    /// Scans <paramref name="input"/>. <paramref name="onEntry"/> sees every chart version and returns the URL to
    /// put in place of its <c>urls</c> (each of them), or null to leave them. Text is written to <paramref name="output"/> when given.
    /// </summary>
    public static IndexScanStatus Scan(TextReader input, TextWriter? output, Func<IndexEntry, string?> onEntry, int maxEntryChars = 4 * 1024 * 1024)
    {
        var text = new RecordingReader(input);
        var parser = new Parser(text);
        var stack = new List<Frame>();
        IndexEntry? entry = null;
        long entryStart = 0;
        long written = 0;
        var rootChecked = false;
        var sawIndexKey = false;

        void CopyTo(long upTo)
        {
            if (upTo > written)
            {
                output?.Write(text.Slice(written, upTo));
                written = upTo;
            }

            text.Discard(written);
        }

        try
        {
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                var parent = stack.Count == 0 ? null : stack[^1];
                switch (current)
                {
                    case Scalar scalar:
                        if (parent is null)
                        {
                            return IndexScanStatus.NotAnIndex; // a document that is one string: not an index
                        }

                        if (parent.IsMapping && parent.ExpectKey)
                        {
                            parent.Key = scalar.Value;
                            parent.ExpectKey = false;
                            if (parent.Role == Role.Root && scalar.Value is "entries" or "apiVersion")
                            {
                                sawIndexKey = true;
                            }

                            break;
                        }

                        if (parent.Role == Role.Version && entry is not null)
                        {
                            switch (parent.Key)
                            {
                                case "version":
                                    entry.Version = scalar.Value;
                                    break;
                                case "digest":
                                    entry.Digest = scalar.Value;
                                    break;
                            }
                        }
                        else if (parent.Role == Role.Urls && entry is not null)
                        {
                            entry.Urls.Add(new IndexUrl(scalar.Value, scalar.Start.Index, scalar.End.Index, scalar.Style));
                        }

                        ValueDone(parent);
                        break;
                    case AnchorAlias:
                        if (parent is not null)
                        {
                            if (parent.IsMapping && parent.ExpectKey)
                            {
                                parent.ExpectKey = false;
                                parent.Key = null;
                            }
                            else
                            {
                                ValueDone(parent);
                            }
                        }

                        break;
                    case MappingStart or SequenceStart:
                        var isMapping = current is MappingStart;
                        if (parent is null && !rootChecked)
                        {
                            rootChecked = true;
                            if (!isMapping)
                            {
                                return IndexScanStatus.NotAnIndex;
                            }
                        }

                        var role = parent is null ? Role.Root : (parent.Role, isMapping, parent.Key) switch
                        {
                            (Role.Root, true, "entries") when !parent.ExpectKey => Role.Entries,
                            (Role.Entries, false, _) when !parent.ExpectKey => Role.ChartVersions,
                            (Role.ChartVersions, true, _) => Role.Version,
                            (Role.Version, false, "urls") when !parent.ExpectKey => Role.Urls,
                            _ => Role.Other,
                        };
                        if (parent is { IsMapping: true, ExpectKey: true })
                        {
                            // A complex key: nothing an index has.
                            role = Role.Other;
                        }

                        if (role == Role.Version)
                        {
                            entry = new IndexEntry { Chart = stack[^2].Key ?? "" };
                            entryStart = current.Start.Index;
                            CopyTo(entryStart);
                        }

                        stack.Add(new Frame(role, isMapping));
                        break;
                    case MappingEnd or SequenceEnd:
                        var closed = stack[^1];
                        stack.RemoveAt(stack.Count - 1);
                        if (closed.Role == Role.Version && entry is not null)
                        {
                            if (onEntry(entry) is { } replacement)
                            {
                                foreach (var url in entry.Urls)
                                {
                                    CopyTo(url.Start);
                                    output?.Write(Quote(replacement, url.Style));
                                    written = url.End;
                                }
                            }

                            entry = null;
                        }

                        if (stack.Count > 0)
                        {
                            var owner = stack[^1];
                            if (owner.IsMapping && owner.ExpectKey)
                            {
                                owner.ExpectKey = false; // it was a complex key
                            }
                            else
                            {
                                ValueDone(owner);
                            }
                        }

                        break;
                }

                if (entry is null)
                {
                    if (text.Buffered > 64 * 1024)
                    {
                        CopyTo(current.End.Index);
                    }
                }
                else if (current.End.Index - entryStart > maxEntryChars)
                {
                    return IndexScanStatus.EntryTooLarge;
                }
            }
        }
        catch (YamlException)
        {
            return IndexScanStatus.NotYaml;
        }

        if (!rootChecked || !sawIndexKey)
        {
            return IndexScanStatus.NotAnIndex;
        }

        text.ReadToEndRecorded();
        CopyTo(text.End);
        return IndexScanStatus.Ok;

        static void ValueDone(Frame frame)
        {
            if (frame.IsMapping)
            {
                frame.ExpectKey = true;
            }
        }
    }

    /// <summary>The replacement as a scalar of the original's style (a plain scalar stays plain when it can).</summary>
    private static string Quote(string value, ScalarStyle style)
    {
        if (style == ScalarStyle.SingleQuoted)
        {
            return "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
        }

        if (style == ScalarStyle.Plain && value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+' or '/' or '%' or '~')
            && char.IsAsciiLetterOrDigit(value[0]))
        {
            return value;
        }

        return "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
    }

    /// <summary>A reader that keeps what it has read from a given position on, so that stretches of it can be copied out.</summary>
    private sealed class RecordingReader(TextReader inner) : TextReader
    {
        private char[] _buffer = new char[16 * 1024];
        private int _length;
        private long _base;

        /// <summary>Absolute position after the last character read.</summary>
        public long End => _base + _length;

        public int Buffered => _length;

        public ReadOnlySpan<char> Slice(long from, long to) => _buffer.AsSpan((int)(from - _base), (int)(to - from));

        /// <summary>Forgets what comes before <paramref name="upTo"/>.</summary>
        public void Discard(long upTo)
        {
            var drop = (int)Math.Min(upTo - _base, _length);
            if (drop <= 0)
            {
                return;
            }

            _buffer.AsSpan(drop, _length - drop).CopyTo(_buffer);
            _length -= drop;
            _base += drop;
        }

        public void ReadToEndRecorded()
        {
            while (Read() >= 0)
            {
            }
        }

        public override int Peek() => inner.Peek();

        public override int Read()
        {
            var c = inner.Read();
            if (c >= 0)
            {
                Append((char)c);
            }

            return c;
        }

        public override int Read(char[] buffer, int index, int count) => Read(buffer.AsSpan(index, count));

        public override int Read(Span<char> buffer)
        {
            var n = inner.Read(buffer);
            for (var i = 0; i < n; i++)
            {
                Append(buffer[i]);
            }

            return n;
        }

        private void Append(char c)
        {
            if (_length == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            _buffer[_length++] = c;
        }
    }
}
