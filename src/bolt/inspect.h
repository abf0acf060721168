// Inspect: `etcdctl snapshot status` numbers and bbolt's Tx.Check in one pass over a
// bbolt file, in bounded memory.
//
// Status follows spec §2.1 exactly: hash = CRC-32C over, for each top-level bucket in
// order, its name then every key and value in key order; revision = main revision of
// the last key of bucket `key`; total_key counts pairs in all buckets; total_size =
// meta.pgid * 4096 (not the file size). Problems are Tx.Check's (§3.9) with bbolt's
// messages ("page N: unreachable unfreed", "page N: multiple references",
// "page N: out of bounds: M", "page N: invalid type: T", "page N: reachable freed",
// "page N: already freed") plus key-order checks like bbolt >= 1.3.7 and a page-id
// check. When problems is non-empty etcdctl would fail ("snapshot file integrity check
// failed. <n> errors found.") and the status numbers are not meaningful.
//
// Throws Error(kDataLoss) when the file cannot be opened as bbolt (see Reader), when a
// page is structurally unreadable (element outside its page), or, when there are no
// check problems, for etcdctl's own hash failures ("cannot get hash of bucket <name>").
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bolt/reader.h"

namespace etcdsafe::bolt {

struct Status {
  uint32_t hash = 0;
  int64_t revision = 0;
  int64_t total_key = 0;
  int64_t total_size = 0;
};

struct InspectResult {
  Status status;
  // The first 1000 problems, in bbolt's order; problem_count is the full count.
  std::vector<std::string> problems;
  uint64_t problem_count = 0;
  Meta meta;
  // Buckets whose walk was split across threads (and kept): for tests and diagnostics.
  int parallel_buckets = 0;
};

struct InspectOptions {
  // Threads for large buckets (0: the machine's cores, at most 4). The result does not
  // depend on it: a parallel walk that meets any problem is redone on one thread.
  size_t threads = 0;
  // Files with fewer pages are walked on one thread (threads cost more than they save).
  uint64_t min_parallel_pages = 16384;  // 64 MiB
};

InspectResult Inspect(const std::string& path, const InspectOptions& opts = {});
InspectResult Inspect(Reader& reader, const InspectOptions& opts = {});

}  // namespace etcdsafe::bolt
