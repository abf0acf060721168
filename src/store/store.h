// Storage backends for backup repositories: where backup objects (snapshot data,
// manifests) live. A Store is a flat namespace of named, immutable-once-committed
// objects under a repository root: "file:///abs/path" or "s3://bucket/prefix".
//
// Contract shared by every backend (tests/unit/store/conformance_test.cc checks it):
//  - Names are relative to the root, '/'-separated, non-empty, no "." / ".." / empty
//    segments, no NUL or other control character, and never end in a temp suffix
//    (".tmp-" + 16 hex digits). Listings never return a name that breaks these rules
//    (a stray file or S3 key named so is skipped, not an error).
//  - Create() streams an object; nothing is visible under the name until the Sink's
//    Close() returns (atomic commit; an existing object is replaced). Destroying the Sink
//    without Close(), or a Close() that throws, leaves nothing behind (temp file removed,
//    S3 multipart upload aborted).
//  - Open() streams an object without buffering it whole; a missing object is kNotFound
//    "<url>/<name>: not found".
//  - List(prefix) returns committed objects whose name starts with `prefix` (a plain
//    string prefix), sorted by name. Remove() of a missing object succeeds.
//  - Listings are bounded: more than max_list_entries (default kMaxListEntries) entries
//    seen in one listing, or an S3 server whose pages do not progress (a repeated or
//    missing continuation token, an empty or backwards truncated page), is kDataLoss
//    naming the repository, never unbounded memory or an endless loop.
//  - file:// objects are regular files only: a symlink (even to a regular file), FIFO,
//    socket, device or directory under an object's name is not an object (Open is
//    kDataLoss "<url>/<name>: not a regular file (...)", Stat is nullopt, listings skip
//    it), and no operation follows a symlink below the repository root (the root
//    itself may be one). Nothing ever blocks on opening an object.
//  - Errors are etcdsafe::Error: kNotFound, kPermissionDenied (HTTP 403), kUnavailable
//    (5xx after retries, connection refused or dropped), kInvalidArgument (bad URL,
//    options, names), kIo (local disk), kDataLoss (short or changed object).
// Thread-safety: a Store may be used concurrently from many threads for different
// objects; each Sink/Source is driven by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/stream.h"

namespace etcdsafe::store {

inline constexpr size_t kMaxListEntries = 1000000;

struct ObjectInfo {
  std::string name;  // relative to the repository root
  uint64_t size = 0;
  int64_t mtime_unix = 0;  // seconds since the epoch (S3: Last-Modified)
};

class Store {
 public:
  virtual ~Store() = default;
  // The repository URL, e.g. "s3://bucket/prefix" or "file:///path", for messages.
  virtual std::string Describe() const = 0;
  virtual std::unique_ptr<Sink> Create(const std::string& name) = 0;
  // Create + Write + Close.
  virtual void Put(const std::string& name, const std::string& data);
  virtual std::unique_ptr<Source> Open(const std::string& name) = 0;
  // Reads a whole small object; larger than `limit` is kDataLoss (a manifest never is).
  // Never reads more than limit + 1 bytes of it (S3: a Content-Length over the limit
  // fails before any GET).
  virtual std::string Get(const std::string& name, size_t limit = 16 << 20);
  // nullopt when the object does not exist (file://: or is not a regular file). Accepts
  // temp names (IsTempName) too, as ListDir(dir, true) returns them.
  virtual std::optional<ObjectInfo> Stat(const std::string& name) = 0;
  virtual std::vector<ObjectInfo> List(const std::string& prefix) = 0;
  // Objects directly under `dir` ("" = the root, or e.g. "locks/"), never deeper (S3:
  // delimiter "/"): a repository never looks into sub-prefixes, which may hold another
  // repository or anything else. With include_temp, uncommitted temporaries (IsTempName)
  // are listed too, so prune can remove those a killed run left. Bounded: more than
  // kMaxListEntries entries is kDataLoss. Sorted by name. `dir` is "" or a valid name
  // followed by "/" (else kInvalidArgument); a missing dir lists as empty. file://: a
  // `dir` that is (or passes through) a symlink is kDataLoss, never followed.
  virtual std::vector<ObjectInfo> ListDir(const std::string& dir, bool include_temp = false) = 0;
  // Accepts temp names too (prune removes what a killed run left). file://: removes
  // only a regular file (anything else under the name is kDataLoss, left alone) and
  // never through a symlinked directory.
  virtual void Remove(const std::string& name) = 0;
  // Incomplete uploads of top-level objects (S3 multipart uploads a killed writer never
  // completed or aborted: invisible, but billed) initiated before `older_than` and whose
  // name `is_ours` accepts are aborted; returns "<name> (upload <id>, initiated <time>)"
  // for each. A backend without such uploads (file://) returns nothing; a server that does
  // not list multipart uploads is kUnsupported. Bounded like List.
  virtual std::vector<std::string> AbortStaleUploads(int64_t older_than_unix,
                                                     const std::function<bool(const std::string&)>& is_ours);
};

// Set fields by assignment (designated initializers trip -Wmissing-field-initializers).
struct StoreOptions {
  // S3 endpoint, "https://host:port" or "http://host:port"; empty: AWS for `region`.
  std::string s3_endpoint;
  std::string region = "us-east-1";
  // Path-style URLs (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key);
  // most S3-compatible servers (MinIO, Ceph, s3rver) want true.
  bool path_style = false;
  std::string ca_file;  // PEM CA bundle for the endpoint; empty: system CAs
  bool insecure_skip_tls_verify = false;
  // Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; else the
  // shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), profile
  // AWS_PROFILE or "default". Set access_key here to bypass both (tests, flags).
  std::string access_key;
  std::string secret_key;
  std::string session_token;
  // When set, used instead of AWS_SHARED_CREDENTIALS_FILE / AWS_PROFILE (the agent's
  // per-repository `credentials_file` and `profile`); the environment's keys still win.
  std::string credentials_file;
  std::string profile;
  // Objects larger than part_size use multipart upload with up to parallel_parts parts
  // in flight; at most parallel_parts × part_size bytes are buffered per Sink. S3 wants
  // part_size >= 5 MiB and at most 10000 parts.
  size_t part_size = 16 << 20;
  int parallel_parts = 4;
  // Ranged GET size for Open(): bytes buffered per Source.
  size_t read_chunk = 8 << 20;
  // Each request is retried on 5xx/429 and transport errors with exponential backoff
  // (retry_base_ms, doubling, capped at 10 s, with jitter).
  int max_retries = 5;
  int retry_base_ms = 200;
  // Entries one List/ListDir may see before it fails with kDataLoss (both backends).
  // Tests lower it; 0 means kMaxListEntries.
  size_t max_list_entries = kMaxListEntries;
};

// Opens "file:///abs/path" or "s3://bucket[/prefix]". Other schemes: kInvalidArgument
// "unknown repository scheme ...". Does no I/O for file:// (the root is created on first
// write); for s3:// it resolves credentials but does not contact the endpoint.
std::unique_ptr<Store> OpenStore(const std::string& url, const StoreOptions& options = {});

// Checks an object name against the contract above; throws kInvalidArgument. With
// allow_temp, a temp name (IsTempName) passes too (Stat, Remove).
void ValidateName(const std::string& store_url, const std::string& name,
                  bool allow_temp = false);
// The same check without throwing, for names found in listings.
bool IsValidName(const std::string& name, bool allow_temp = false);
// Checks a ListDir `dir`: "" or a valid name + "/"; throws kInvalidArgument.
void ValidateDir(const std::string& store_url, const std::string& dir);
// True for names the backends use for uncommitted data (skipped by List).
bool IsTempName(const std::string& name);
// "<name>.tmp-<16 random hex digits>".
std::string TempName(const std::string& name);

}  // namespace etcdsafe::store
