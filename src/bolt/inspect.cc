#include "bolt/inspect.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/tree.h"

namespace etcdsafe::bolt {

using internal::CheckState;
using internal::Node;
using internal::Tree;

namespace {

constexpr size_t kMaxBucketNesting = 16;

// Hashes and counts the leaves of top-level buckets (spec §2.1) while a Tree walk checks
// their pages. One per thread in a parallel walk; `crc` then covers only that thread's
// part and `hashed` its length, for Crc32cCombine.
class LeafHasher {
 public:
  LeafHasher(Tree& tree, CheckState& cs) : tree_(tree), cs_(cs) {}

  uint32_t crc = 0;
  uint64_t hashed = 0;
  int64_t total_key = 0;
  std::optional<int64_t> revision;  // main revision of the last key seen in bucket "key"
  std::string hash_error;          // etcdctl's hash failure, first one

  void Hash(Bytes b) {
    crc = Crc32cExtend(crc, b);
    hashed += b.size();
  }

  void SetHashError(std::string msg) {
    if (hash_error.empty()) hash_error = std::move(msg);
  }

  // The whole top-level bucket in holder's element i.
  void Bucket(const Node& holder, size_t i, bool is_key) {
    WalkBucket(holder, i, 1, [&](const Node& n) { Leaf(n, is_key); });
  }

  // A leaf of a top-level bucket: feeds the hash.
  void Leaf(const Node& n, bool is_key) {
    if (n.count == 0) return;
    total_key += n.count;
    if (is_key) {
      internal::KeyLeafFacts f = internal::KeyBucketLeafFacts(n);
      if (!f.hash_error.empty()) SetHashError(std::move(f.hash_error));
      if (f.revision) revision = f.revision;
    }
    if (n.contiguous) {
      Hash(Bytes{n.data_begin, static_cast<size_t>(n.data_end - n.data_begin)});
      return;
    }
    size_t nesting = nesting_;
    for (size_t i = 0; i < n.count; i++) {
      Hash(n.key(i));
      if (n.leaf_flags(i) & kBucketLeafFlag) {
        // etcdctl hashes a nested bucket as its key with an empty value; Check still
        // walks its pages.
        WalkBucket(n, i, nesting + 1, [&](const Node& c) { NestedLeaf(c); });
        nesting_ = nesting;
      } else {
        Hash(n.value(i));
      }
    }
  }

 private:
  template <class F>
  void WalkBucket(const Node& holder, size_t i, size_t nesting, F&& on_leaf) {
    if (nesting > kMaxBucketNesting) {
      throw Error(ErrorCode::kDataLoss, tree_.source().name() + ": page " + std::to_string(holder.id) +
                                            ": buckets nested too deeply");
    }
    Pgid root = 0;
    std::optional<Node> inline_root = tree_.InlineOrRoot(holder, i, &root);
    nesting_ = nesting;
    tree_.Walk(std::move(inline_root), root, cs_, on_leaf);
  }

  // A leaf of a nested bucket: only checked, not hashed.
  void NestedLeaf(const Node& n) {
    size_t nesting = nesting_;
    for (size_t i = 0; i < n.count; i++) {
      if (n.leaf_flags(i) & kBucketLeafFlag) {
        WalkBucket(n, i, nesting + 1, [&](const Node& c) { NestedLeaf(c); });
        nesting_ = nesting;
      }
    }
  }

  Tree& tree_;
  CheckState& cs_;
  size_t nesting_ = 1;
};

class Inspector {
 public:
  Inspector(Reader& r, const InspectOptions& opts)
      : r_(r), opts_(opts), meta_(r.meta()), tree_(r.source(), meta_), hasher_(tree_, cs_) {
    cs_.name = r.name();
    cs_.strict = false;
    cs_.check_order = true;
    cs_.seen.assign((meta_.pgid + 63) / 64, 0);
    threads_ = opts.threads != 0 ? opts.threads : std::min<size_t>(std::thread::hardware_concurrency(), 4);
  }

  InspectResult Run() {
    CheckState::Set(cs_.seen, 0);
    CheckState::Set(cs_.seen, 1);
    if (meta_.freelist != kPgidNoFreelist) LoadFreelist();
    tree_.Walk(std::nullopt, meta_.root, cs_, [&](const Node& leaf) { RootLeaf(leaf); });
    if (meta_.freelist != kPgidNoFreelist) FindUnreachable();

    InspectResult out;
    out.meta = meta_;
    out.status.hash = hasher_.crc;
    out.status.revision = hasher_.revision.value_or(0);
    out.status.total_key = hasher_.total_key;
    out.status.total_size = static_cast<int64_t>(meta_.pgid * kPageSize);
    out.problems = std::move(cs_.problems);
    out.problem_count = cs_.problem_count;
    out.parallel_buckets = parallel_buckets_;
    if (out.problem_count == 0 && !hasher_.hash_error.empty()) {
      throw Error(ErrorCode::kDataLoss, r_.name() + ": " + hasher_.hash_error);
    }
    return out;
  }

 private:
  [[noreturn]] void Corrupt(Pgid id, const std::string& msg) {
    throw Error(ErrorCode::kDataLoss, r_.name() + ": page " + std::to_string(id) + ": " + msg);
  }

  void LoadFreelist() {
    Pgid id = meta_.freelist;
    if (id >= meta_.pgid || id < 2) Corrupt(id, "freelist page out of bounds: " + std::to_string(meta_.pgid));
    PageRef head = r_.source().Read(id * kPageSize, kPageHeaderSize);
    uint16_t flags = LoadLE16(head.data() + kPageFlagsOffset);
    uint32_t overflow = LoadLE32(head.data() + kPageOverflowOffset);
    if (!(flags & kFreelistPageFlag)) Corrupt(id, "invalid freelist page type: " + internal::PageTypeName(flags));
    if (uint64_t{overflow} >= meta_.pgid - id) {
      Corrupt(id, "freelist overflow of " + std::to_string(overflow) + " pages runs past the high-water mark");
    }
    PageRef page = r_.source().Read(id * kPageSize, (uint64_t{overflow} + 1) * kPageSize);
    uint64_t count = LoadLE16(page.data() + kPageCountOffset);
    size_t start = kPageHeaderSize;
    if (count == 0xFFFF) {
      count = LoadLE64(page.data() + kPageHeaderSize);
      start += 8;
    }
    if (count > (page.size() - start) / 8) {
      Corrupt(id, "freelist of " + std::to_string(count) + " ids does not fit in " +
                      std::to_string(overflow + 1) + " pages");
    }
    std::vector<Pgid> ids(count);
    for (uint64_t i = 0; i < count; i++) ids[i] = LoadLE64(page.data() + start + 8 * i);
    std::sort(ids.begin(), ids.end());
    cs_.freed.assign((meta_.pgid + 63) / 64, 0);
    for (size_t i = 0; i < ids.size(); i++) {
      if (i > 0 && ids[i] == ids[i - 1]) {
        cs_.Problem("page " + std::to_string(ids[i]) + ": already freed");
      }
      if (ids[i] < meta_.pgid) CheckState::Set(cs_.freed, ids[i]);
    }
    for (uint64_t k = 0; k <= overflow; k++) CheckState::Set(cs_.seen, id + k);
  }

  void FindUnreachable() {
    for (size_t w = 0; w < cs_.seen.size(); w++) {
      uint64_t missing = ~cs_.seen[w] & ~cs_.freed[w];
      if (w == cs_.seen.size() - 1 && meta_.pgid % 64 != 0) {
        missing &= (uint64_t{1} << (meta_.pgid % 64)) - 1;
      }
      while (missing != 0) {
        int b = __builtin_ctzll(missing);
        missing &= missing - 1;
        cs_.Problem("page " + std::to_string(w * 64 + b) + ": unreachable unfreed");
      }
    }
  }

  void RootLeaf(const Node& leaf) {
    for (size_t i = 0; i < leaf.count; i++) {
      Bytes name = leaf.key(i);
      if (!(leaf.leaf_flags(i) & kBucketLeafFlag)) {
        hasher_.SetHashError("cannot get hash of bucket " + std::string(AsString(name)));
        continue;
      }
      hasher_.Hash(name);
      bool is_key = AsString(name) == "key";
      if (!ParallelBucket(leaf, i, is_key)) hasher_.Bucket(leaf, i, is_key);
    }
  }

  struct UnitResult {
    uint32_t crc = 0;
    uint64_t hashed = 0;
    int64_t total_key = 0;
    std::optional<int64_t> revision;
  };

  // Walks a large page-based bucket on several threads: the top levels of its tree are
  // visited here until there are enough subtrees (internal::Split), threads take subtrees
  // in turn (internal::RunUnits) and the per-subtree CRCs are combined in key order. Only
  // a clean walk is kept: on any problem, hash error or exception the state is rolled back
  // and the caller walks the bucket on one thread, so problems, their order and errors are
  // exactly those of the sequential walk. Returns false when it did not (or must not) take
  // the bucket.
  bool ParallelBucket(const Node& holder, size_t i, bool is_key) {
    if (threads_ < 2 || meta_.pgid < opts_.min_parallel_pages) return false;
    if (holder.value(i).size() < kBucketHeaderSize) return false;  // the sequential walk reports it
    const Pgid root = LoadLE64(holder.value(i).data());

    const std::vector<uint64_t> saved_seen = cs_.seen;
    const uint64_t saved_count = cs_.problem_count;
    auto roll_back = [&] {
      cs_.seen = saved_seen;
      cs_.problems.resize(std::min<uint64_t>(saved_count, CheckState::kMaxStoredProblems));
      cs_.problem_count = saved_count;
      return false;
    };
    internal::SplitTree split;
    try {
      if (!internal::Split(tree_, root, cs_, threads_ * 16, &split)) return roll_back();
    } catch (const Error&) {
      return roll_back();
    }

    std::vector<UnitResult> results(split.units.size());
    std::atomic<bool> failed{false};
    internal::WalkWorkers workers;
    try {
      workers = internal::MakeWalkWorkers(r_.source(), threads_, cs_);
    } catch (const Error&) {
      return roll_back();
    }
    internal::RunUnits(split.units.size(), threads_, failed, [&](size_t self, size_t u) {
      try {
        CheckState& cs = workers.states[self];
        Tree tree(workers.source(self), meta_);
        LeafHasher h(tree, cs);
        const internal::Subtree& unit = split.units[u];
        internal::WalkBounds b{&unit.lo, unit.has_hi ? &unit.hi : nullptr, split.depth};
        tree.Walk(std::nullopt, unit.root, cs, [&](const Node& n) { h.Leaf(n, is_key); }, b);
        if (cs.problem_count != 0 || !h.hash_error.empty()) failed = true;
        results[u] = UnitResult{h.crc, h.hashed, h.total_key, h.revision};
      } catch (...) {
        failed = true;
      }
    });
    if (failed) return roll_back();
    for (const UnitResult& r : results) {
      hasher_.crc = Crc32cCombine(hasher_.crc, r.crc, r.hashed);
      hasher_.hashed += r.hashed;
      hasher_.total_key += r.total_key;
      if (r.revision) hasher_.revision = r.revision;
    }
    parallel_buckets_++;
    return true;
  }

  Reader& r_;
  InspectOptions opts_;
  Meta meta_;
  Tree tree_;
  CheckState cs_;
  LeafHasher hasher_;
  size_t threads_ = 1;
  int parallel_buckets_ = 0;
};

}  // namespace

InspectResult Inspect(Reader& reader, const InspectOptions& opts) { return Inspector(reader, opts).Run(); }

InspectResult Inspect(const std::string& path, const InspectOptions& opts) {
  Reader r = Reader::Open(path);
  return Inspect(r, opts);
}

}  // namespace etcdsafe::bolt
