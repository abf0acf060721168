// s3:// backend: objects in an S3 bucket (AWS or S3-compatible), over cpp-httplib with our
// own SigV4 signer (sigv4.h).
//
// Writes: objects up to part_size go out as one PUT on Close(); larger ones as a
// multipart upload whose parts are uploaded by parallel_parts threads while the caller
// keeps writing (at most parallel_parts × part_size bytes buffered). Close() completes
// the upload; a failure, or a Sink destroyed without Close(), aborts it.
// Reads: ranged GETs of read_chunk bytes pinned to the first response's ETag (If-Match),
// so memory stays bounded and an object replaced mid-read is kDataLoss, not a mix.
// Listing: ListObjectsV2 pages (ListDir with delimiter "/"), bounded by
// max_list_entries; a server whose truncated pages repeat a continuation token, omit
// it, or do not move past the previous page is kDataLoss (S3 lists in ascending key
// order). Keys that are not valid object names are skipped. Every response body has a
// cap: an object read never receives more than the range it asked for.
// Every request is retried on 5xx/429 and transport errors with exponential backoff.
// Payloads are always SHA-256-signed (parts are hashed in the uploading threads), which
// also protects bodies over plain http. Bucket creation is deliberately not done here.
// Thread-safe: HTTP clients (one kept-alive connection each) come from a mutex-guarded
// pool; everything else is immutable. Why cpp-httplib and not libcurl: the agent already
// serves HTTP with it, and libcurl drags ~30 shared libraries (gnutls, krb5, ldap, ...)
// into every process (about 4 MiB of the idle agent's RSS, issue 8).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/sigv4.h"
#include "store/store.h"

namespace etcdsafe::store {

// url: "s3://bucket[/prefix]".
std::unique_ptr<Store> NewS3Store(const std::string& url, const StoreOptions& options);

// Credentials from the options, the environment or the shared credentials file (see
// StoreOptions). None found: kUnauthenticated naming the places looked at.
SigV4Credentials ResolveCredentials(const StoreOptions& options);

// Minimal XML access for S3 responses (untrusted bytes): no DTDs, no nesting of the
// same tag, entities &amp; &lt; &gt; &quot; &apos; &#N; &#xN; decoded.
namespace s3xml {
// Text of the first <tag>...</tag> (decoded), or nullopt.
std::optional<std::string> Find(std::string_view xml, std::string_view tag);
// Raw inner text of every <tag>...</tag>, in order.
std::vector<std::string_view> FindAll(std::string_view xml, std::string_view tag);
// Decodes entities; throws kDataLoss on a malformed one.
std::string Unescape(std::string_view s);
std::string Escape(std::string_view s);
}  // namespace s3xml

}  // namespace etcdsafe::store
