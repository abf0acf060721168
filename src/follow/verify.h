// `backups verify` for chains of continuous backup: every chain of a repository read
// back whole with the key (ReadChain: every segment's stored sha256 against the link its
// successor carries, its header against its name, every record decoded and checked), so
// a missing, reordered, duplicated, swapped, replaced or altered segment is reported
// before any restore needs the chain. Chains are found from names (ScanChains); problems
// the names alone show (a missing number, a revision that does not follow on, two
// segments of one number) make a chain damaged without reading it further than its
// usable part. Segments without their base (orphans) cannot be restored from and are
// listed apart. Never throws for a damaged chain; only when the repository cannot be
// listed. Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "follow/chain.h"
#include "pipeline/keys.h"

namespace etcdsafe::follow {

struct ChainVerifyOutcome {
  enum class State { kOk, kDamaged, kKeyRequired };
  std::string base_id;      // the snapshot backup the chain continues
  State state = State::kDamaged;
  bool ok() const { return state == State::kOk; }
  uint64_t segments = 0;          // segment objects of the chain (by name)
  uint64_t segments_read = 0;     // of them read and checked
  int64_t first_revision = 0;     // base revision + 1
  int64_t last_revision = 0;      // by the names; what was checked: checked_last_revision
  int64_t checked_last_revision = 0;
  int64_t first_time_ms = 0, last_time_ms = 0;  // of the records read (0: none read)
  std::string end;                // the last segment's "end" (a chain ended on purpose)
  std::string problem;            // one printable line when not ok
};

struct ChainVerifyReport {
  std::vector<ChainVerifyOutcome> chains;  // by base, oldest first
  // "<name>  (<why>)", printable: segments whose base backup has no valid manifest.
  std::vector<std::string> orphans;
};

// Verifies every chain, or only the chain of backup `base_id` (an id, or "latest": the
// newest snapshot backup; a base without segments gives no outcome). Encrypted segments
// without a key: kKeyRequired ("names checked only"), unless the names already show the
// chain damaged. A wrong key is damage, as for backups (the segments do not decrypt).
// `progress` is called after each segment read.
ChainVerifyReport VerifyChains(backup::Repository& repo, const std::optional<pipeline::KeySpec>& key,
                               const std::optional<std::string>& base_id = std::nullopt,
                               const std::function<void(uint64_t segments_read)>& progress = {});

}  // namespace etcdsafe::follow
