using System.Security.Cryptography;

namespace MirrorProxy.Oci;

/// <summary>Outcome of parsing a digest string.</summary>
internal enum DigestParseStatus
{
    Ok,
    /// <summary>Not of the form algorithm ":" encoded.</summary>
    Invalid,
    /// <summary>Well formed, but an algorithm this mirror cannot verify.</summary>
    UnsupportedAlgorithm,
}

/// <summary>A content digest such as <c>sha256:…</c>, validated against the OCI grammar and the algorithm's encoding.</summary>
internal readonly record struct Digest
{
    public const string Sha256Prefix = "sha256:";

    private Digest(string value, int separator)
    {
        Value = value;
        _separator = separator;
    }

    private readonly int _separator;

    /// <summary>The full digest, e.g. <c>sha256:0123…</c>.</summary>
    public string Value { get; }

    public ReadOnlySpan<char> Algorithm => Value.AsSpan(0, _separator);

    public ReadOnlySpan<char> Encoded => Value.AsSpan(_separator + 1);

    public bool IsSha512 => Algorithm.SequenceEqual("sha512");

    public override string ToString() => Value;

    public static bool TryParse(string? text, out Digest digest) => Parse(text, out digest) == DigestParseStatus.Ok;

    public static DigestParseStatus Parse(string? text, out Digest digest)
    {
        digest = default;
        if (string.IsNullOrEmpty(text) || text.Length > 256)
        {
            return DigestParseStatus.Invalid;
        }

        var separator = text.IndexOf(':');
        if (separator <= 0 || separator == text.Length - 1)
        {
            return DigestParseStatus.Invalid;
        }

        var status = Check(text.AsSpan(0, separator), text.AsSpan(separator + 1));
        if (status == DigestParseStatus.Ok)
        {
            digest = new Digest(text, separator);
        }

        return status;
    }

    /// <summary>What <see cref="Parse"/> would say of <c>algorithm ":" encoded</c>, without building the string.</summary>
    public static DigestParseStatus Check(ReadOnlySpan<char> algorithm, ReadOnlySpan<char> encoded)
    {
        if (algorithm.IsEmpty || encoded.IsEmpty || algorithm.Length + 1 + encoded.Length > 256 || !IsAlgorithm(algorithm) || !IsEncoded(encoded))
        {
            return DigestParseStatus.Invalid;
        }

        int expectedLength;
        if (algorithm.SequenceEqual("sha256"))
        {
            expectedLength = 64;
        }
        else if (algorithm.SequenceEqual("sha512"))
        {
            expectedLength = 128;
        }
        else
        {
            return DigestParseStatus.UnsupportedAlgorithm;
        }

        return encoded.Length == expectedLength && IsLowerHex(encoded) ? DigestParseStatus.Ok : DigestParseStatus.Invalid;
    }

    /// <summary>Creates a sha256 digest from a raw 32-byte hash.</summary>
    public static Digest FromSha256Hash(ReadOnlySpan<byte> hash)
    {
        return new Digest(Sha256Prefix + Convert.ToHexStringLower(hash), Sha256Prefix.Length - 1);
    }

    /// <summary>Computes the digest of <paramref name="content"/> with this digest's algorithm and compares.</summary>
    public bool Matches(ReadOnlySpan<byte> content)
    {
        Span<byte> hash = stackalloc byte[64];
        var length = IsSha512 ? SHA512.HashData(content, hash) : SHA256.HashData(content, hash);
        return MatchesHash(hash[..length]);
    }

    /// <summary>Compares a raw hash produced with this digest's algorithm against the encoded part.</summary>
    public bool MatchesHash(ReadOnlySpan<byte> hash)
    {
        Span<char> hex = stackalloc char[hash.Length * 2];
        Convert.TryToHexStringLower(hash, hex, out _);
        return hex.SequenceEqual(Encoded);
    }

    public IncrementalHash CreateHash() => IncrementalHash.CreateHash(IsSha512 ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256);

    public static Digest ComputeSha256(ReadOnlySpan<byte> content)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(content, hash);
        return FromSha256Hash(hash);
    }

    private static bool IsAlgorithm(ReadOnlySpan<char> s)
    {
        // algorithm-component ([+._-] algorithm-component)* with component = [a-z0-9]+
        var previousWasSeparator = true;
        foreach (var c in s)
        {
            if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9'))
            {
                previousWasSeparator = false;
            }
            else if (c is '+' or '.' or '_' or '-')
            {
                if (previousWasSeparator)
                {
                    return false;
                }

                previousWasSeparator = true;
            }
            else
            {
                return false;
            }
        }

        return !previousWasSeparator;
    }

    private static bool IsEncoded(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '=' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsLowerHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
