// Background compaction of chains: merges runs of small segments into larger ones, so a
// chain recorded at one segment a second does not grow to 86,400 objects a day (listings,
// per-request prices, restore time).
//
// A MERGED segment (follow/segment.h) replaces consecutive segments s1..s2 of one chain:
// its records are theirs in order, its prev_sha256 is s1's and its link_sha256 is what
// segment s2 + 1 names, so ReadChain reads it in their place and the chain's links stay
// checked end to end. Merged segments merge again like any other.
//
// Contract of CompactChain:
//  - Candidates: the chain's usable segments (chain.h) except the newest keep_last, whose
//    object is at least min_age old (store modification time against this host's clock).
//    Runs of consecutive candidates are read, each segment's link to the one before it
//    checked as ReadChain does (a plaintext segment in an encrypted base's chain refused),
//    and merged while the merged plain bytes stay within target_bytes; a run of one
//    segment is left as it is. A segment carrying "end" closes its run.
//  - Commit: the merged object is stored (atomic put) under its merged name, then the
//    originals are removed, highest number first. Killed at any point, the repository
//    holds the originals, or the merged object and some originals it supersedes
//    (ScanChains leaves those out, the next compaction or prune removes them): every state
//    reads as the same chain.
//  - Superseded leftovers of an earlier merge are removed once the merged segment that
//    replaces them has been read back whole (decoded, header against its name).
//  - Nothing is written in a dry run (segments are still read, to know their sizes).
//  - Errors: a damaged run (broken link, undecodable segment) stops this chain's
//    compaction with kDataLoss and leaves it as it was; an encrypted segment without a key
//    is kInvalidArgument; the store's errors as they are.
// The caller holds the compact lock (backup/lock.h kCompactOperation): CompactRepository
// takes it. Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backup/lock.h"
#include "backup/repository.h"
#include "follow/chain.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"

namespace etcdsafe::follow {

struct CompactOptions {
  uint64_t target_bytes = uint64_t{64} << 20;  // plain bytes of a merged segment, at most
  std::chrono::seconds min_age{3600};          // younger segment objects are left alone
  size_t keep_last = 16;                       // the newest N usable segments of a chain are left alone
  pipeline::Compression compression = pipeline::Compression::kZstd;
  int compression_level = 0;
  bool dry_run = false;
  // Checked before each segment read and each merge written: true stops (what is half
  // read is dropped; a merge whose object is written still removes its originals).
  std::function<bool()> should_stop;
  // The held compact lock: CheckHeld() before every write and removal when set.
  backup::RepositoryLock* lock = nullptr;
  // Plain records sizes learned by earlier passes, by object name (the recorder keeps one
  // across passes, so a segment too big to merge is not read again): may be null.
  std::map<std::string, uint64_t>* known_sizes = nullptr;
  // Called after each step of a commit: "wrote <name>", "removed <name>". For tests: a
  // throw stops the compaction right there, as a kill would.
  std::function<void(const std::string& step)> on_step;
};

struct CompactReport {
  // With dry_run: what would be.
  uint64_t merged_written = 0;    // merged segments stored
  uint64_t segments_replaced = 0; // segment objects they replace
  uint64_t removed = 0;           // objects removed (originals and superseded leftovers)
  uint64_t segments_read = 0;
  // One printable line per action: "wrote <name> (replaces segments 3..7, 5 objects)",
  // "removed <name> (replaced by <merged>)"; with dry_run "would ...".
  std::vector<std::string> actions;
  std::vector<std::string> notes;  // chains skipped and why
};

CompactReport CompactChain(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                           const CompactOptions& options);

// Takes the compact lock (unless dry_run; kLocked while another compaction or a prune
// runs), lists the repository once and compacts every chain, oldest first. A chain that
// fails is noted and the others are still compacted; the first such error is rethrown
// at the end (kDataLoss, kInvalidArgument ...) after `report` got what was done.
void CompactRepository(backup::Repository& repo, const std::optional<pipeline::KeySpec>& key,
                       const CompactOptions& options, CompactReport* report);

}  // namespace etcdsafe::follow
