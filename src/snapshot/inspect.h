// `snapshot status` and `snapshot verify` on a saved snapshot file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/checksum.h"
#include "bolt/inspect.h"
#include "snapshot/status_format.h"

namespace etcdsafe::snapshot {

struct FileStatus {
  StatusNumbers numbers;     // identical to etcdctl 3.4's snapshot status
  uint64_t file_size = 0;
  bool has_trailer = false;  // file ends with etcd's 32-byte sha256 trailer
};

// Reads the status numbers with bounded memory and runs bbolt's consistency check.
// Errors: kNotFound (missing file), kDataLoss with etcdctl's words ("invalid database",
// "snapshot file integrity check failed. 2 errors found: page 41: ...; page 42: ...").
FileStatus ReadStatus(const std::string& path);

// The status numbers of an Inspect/StreamInspector result, after its consistency check:
// problems are kDataLoss with the same words as ReadStatus.
StatusNumbers CheckedNumbers(const bolt::InspectResult& in);

// Bytes that replace the file's own at `offset` while reading (see ReadStatus below).
struct BytePatch {
  uint64_t offset = 0;
  std::string bytes;
};
// ReadStatus of the file as if `patch` had been written into it (the file is not changed).
FileStatus ReadStatus(const std::string& path, const BytePatch& patch);

struct VerifyResult {
  FileStatus status;
  Sha256Digest db_sha256{};
};

// ReadStatus plus the sha256 trailer check. A file without a trailer, or whose db bytes
// do not hash to it, is kDataLoss. `progress` (may be empty) gets bytes hashed so far.
VerifyResult VerifySnapshotFile(const std::string& path,
                                const std::function<void(uint64_t)>& progress = {});

// sha256 of the first `length` bytes of `path`, read in large sequential chunks.
Sha256Digest HashFilePrefix(const std::string& path, uint64_t length,
                            const std::function<void(uint64_t)>& progress = {});

}  // namespace etcdsafe::snapshot
