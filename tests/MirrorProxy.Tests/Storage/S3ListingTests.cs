using System.Text;
using MirrorProxy.Storage.S3;

namespace MirrorProxy.Tests.Storage;

public sealed class S3ListingTests
{
    [Fact]
    public async Task ReadListing_EveryContentsEntry_WhateverFollowsItsLastChild()
    {
        // Entries as Ceph RGW writes them (Owner and Type after Size), one closing right after Size, and one empty.
        const string xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>bucket</Name><Prefix>blobs/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
              <Contents><Key>blobs/sha256/aa</Key><LastModified>2026-11-29T16:32:29.947Z</LastModified><ETag>"x"</ETag><Size>1576199</Size>
                <StorageClass>STANDARD</StorageClass><Owner><ID>mirror</ID><DisplayName>mirror</DisplayName></Owner><Type>Normal</Type></Contents>
              <Contents><Key>blobs/sha256/bb</Key><Size>425</Size></Contents>
              <Contents><Size>1</Size><Key>blobs/sha256/cc</Key></Contents>
              <Contents/>
              <CommonPrefixes><Prefix>blobs/sha512/</Prefix></CommonPrefixes>
              <NextContinuationToken>next/page</NextContinuationToken>
            </ListBucketResult>
            """;

        var (page, continuation) = await S3Client.ReadListingAsync(new MemoryStream(Encoding.UTF8.GetBytes(xml)), CancellationToken.None);

        Assert.Equal(["blobs/sha256/aa", "blobs/sha256/bb", "blobs/sha256/cc", "blobs/sha512/"], page.Select(e => e.Key));
        Assert.Equal([1576199L, 425L, 1L, -1L], page.Select(e => e.Size));
        Assert.Equal(new DateTimeOffset(2026, 11, 29, 16, 32, 29, 947, TimeSpan.Zero), page[0].LastModified);
        Assert.Equal("next/page", continuation);
    }

    [Fact]
    public async Task ReadListing_NotTruncated_HasNoContinuation_AndAnEmptyResultIsEmpty()
    {
        const string last = """<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>ignored</NextContinuationToken><Contents><Key>k</Key><Size>2</Size></Contents></ListBucketResult>""";
        const string empty = """<ListBucketResult/>""";

        var (page, continuation) = await S3Client.ReadListingAsync(new MemoryStream(Encoding.UTF8.GetBytes(last)), CancellationToken.None);
        var (none, _) = await S3Client.ReadListingAsync(new MemoryStream(Encoding.UTF8.GetBytes(empty)), CancellationToken.None);

        Assert.Equal("k", Assert.Single(page).Key);
        Assert.Null(continuation);
        Assert.Empty(none);
    }
}
