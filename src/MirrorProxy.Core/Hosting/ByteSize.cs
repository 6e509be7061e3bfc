using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace MirrorProxy.Hosting;

/// <summary>
/// A size in bytes written for people: <c>300MB</c>, <c>20GiB</c>, <c>512k</c>, or a plain number of bytes.
/// Decimal units are powers of 1000, binary units (KiB, MiB, GiB, TiB) powers of 1024.
/// </summary>
[TypeConverter(typeof(ByteSizeConverter))]
public readonly record struct ByteSize(long Bytes)
{
    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000),
        ("T", 1_000_000_000_000), ("G", 1_000_000_000), ("M", 1_000_000), ("K", 1_000), ("B", 1),
    ];

    public static bool TryParse(string? text, out ByteSize size)
    {
        size = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var span = text.AsSpan().Trim();
        long factor = 1;
        foreach (var (suffix, unitFactor) in Units)
        {
            if (span.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = unitFactor;
                span = span[..^suffix.Length].TrimEnd();
                break;
            }
        }

        if (!decimal.TryParse(span, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number) || number < 0)
        {
            return false;
        }

        var bytes = number * factor;
        if (bytes > long.MaxValue)
        {
            return false;
        }

        size = new ByteSize((long)bytes);
        return true;
    }

    public override string ToString()
    {
        foreach (var (suffix, factor) in Units)
        {
            if (suffix.Contains('i', StringComparison.Ordinal) && Bytes >= factor && Bytes % factor == 0)
            {
                return (Bytes / factor).ToString(CultureInfo.InvariantCulture) + suffix;
            }
        }

        return Bytes.ToString(CultureInfo.InvariantCulture) + "B";
    }
}

internal sealed class ByteSizeConverter : TypeConverter
{
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) => sourceType == typeof(string) || base.CanConvertFrom(context, sourceType);

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) =>
        value is string text
            ? ByteSize.TryParse(text, out var size) ? size : throw new FormatException($"'{text}' is not a size such as 300MB, 20GiB or 1048576")
            : base.ConvertFrom(context, culture, value);
}

/// <summary>
/// Reads size keys as text. The configuration binder converts a <see cref="ByteSize"/> through its
/// <see cref="TypeConverter"/>, which trimming removes from the Native AOT build: there the binder left every size
/// (Cache:MaxSize, --max-cache-size included) at its default, silently. Each size key is parsed here instead, in
/// both builds; a value that is not a size fails the start, naming its key.
/// </summary>
internal static class ByteSizeBinding
{
    public static OptionsBuilder<T> BindSizes<T>(this OptionsBuilder<T> builder, IConfigurationSection section, params (string Key, Action<T, ByteSize> Set)[] sizes)
        where T : class =>
        builder.PostConfigure(options =>
        {
            foreach (var (key, set) in sizes)
            {
                if (Read<T>(section, key) is { } size)
                {
                    set(options, size);
                }
            }
        });

    /// <summary>The size at <paramref name="key"/> under <paramref name="section"/>; null when the key is absent.</summary>
    public static ByteSize? Read<T>(IConfigurationSection section, string key) =>
        section[key] is not { Length: > 0 } text ? null
        : ByteSize.TryParse(text, out var size) ? size
        : throw new OptionsValidationException(Options.DefaultName, typeof(T), [$"{section.Path}:{key}: '{text}' is not a size such as 300MB, 20GiB or 1048576"]);
}
