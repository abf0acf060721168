#include "bolt/inspect.h"

#include <algorithm>
#include <atomic>
#include <mutex>
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

  // A part of a bucket's tree that one thread walks: the subtree at `root`, a child of a
  // branch page the main thread already visited, with its key bounds from that page.
  struct Unit {
    Pgid root = 0;
    Bytes lo, hi;
    bool has_hi = false;
  };
  struct UnitResult {
    uint32_t crc = 0;
    uint64_t hashed = 0;
    int64_t total_key = 0;
    std::optional<int64_t> revision;
  };

  // Walks a large page-based bucket on several threads: the main thread visits the top
  // levels of its tree until there are enough subtrees, threads take subtrees in turn
  // and the per-subtree CRCs are combined in key order. Only a clean walk is kept: on
  // any problem, hash error or exception the state is rolled back and the caller walks
  // the bucket on one thread, so problems, their order and errors are exactly those of
  // the sequential walk. Returns false when it did not (or must not) take the bucket.
  bool ParallelBucket(const Node& holder, size_t i, bool is_key) {
    if (threads_ < 2 || meta_.pgid < opts_.min_parallel_pages) return false;
    Pgid root = 0;
    if (holder.value(i).size() < kBucketHeaderSize) return false;  // the sequential walk reports it
    root = LoadLE64(holder.value(i).data());
    if (root == 0) return false;  // inline bucket: tiny

    const std::vector<uint64_t> saved_seen = cs_.seen;
    const uint64_t saved_count = cs_.problem_count;
    auto roll_back = [&] {
      cs_.seen = saved_seen;
      cs_.problems.resize(std::min<uint64_t>(saved_count, CheckState::kMaxStoredProblems));
      cs_.problem_count = saved_count;
      return false;
    };

    // Expand level by level, in key order, checking each branch page as the walk would.
    // A level is expanded only when every unit's page header says "branch" (a B+tree's
    // leaves all sit at one depth), so leaves are left to the threads.
    std::vector<Node> pinned;  // owned copies of the branch pages whose keys bound the units
    std::vector<Unit> units;
    size_t depth = 0;
    try {
      std::optional<Node> top = tree_.Visit(root, cs_);
      if (!top) return roll_back();
      CheckOrder(*top, nullptr, nullptr, cs_);
      if (top->is_leaf()) return roll_back();
      pinned.push_back(internal::OwnedCopy(*top));
      AddChildren(pinned.back(), Bytes{}, false, &units);
      depth = 1;
      const size_t want = threads_ * 16;
      while (units.size() < want && depth < internal::kMaxTreeDepth && cs_.problem_count == saved_count) {
        bool all_branches = true;
        for (const Unit& u : units) {
          if (u.root < 2 || u.root >= meta_.pgid ||
              !(LoadLE16(r_.source().Read(u.root * kPageSize, kPageHeaderSize).data() + kPageFlagsOffset) &
                kBranchPageFlag)) {
            all_branches = false;
            break;
          }
        }
        if (!all_branches) break;
        std::vector<Unit> next;
        for (const Unit& u : units) {
          std::optional<Node> n = tree_.Visit(u.root, cs_);
          if (!n || n->is_leaf()) return roll_back();
          CheckOrder(*n, &u.lo, u.has_hi ? &u.hi : nullptr, cs_);
          pinned.push_back(internal::OwnedCopy(*n));
          AddChildren(pinned.back(), u.hi, u.has_hi, &next);
        }
        units = std::move(next);
        depth++;
      }
    } catch (const Error&) {
      return roll_back();
    }
    if (cs_.problem_count != saved_count || units.size() < 2) return roll_back();

    std::vector<UnitResult> results(units.size());
    std::atomic<bool> failed{false};
    // Each thread owns a contiguous run of units (neighbouring subtrees share file
    // windows) and, when done, takes units from the back of the longest other run.
    std::mutex mu;
    std::vector<std::pair<size_t, size_t>> runs(threads_);
    for (size_t t = 0; t < threads_; t++) runs[t] = {units.size() * t / threads_, units.size() * (t + 1) / threads_};
    auto take = [&](size_t self) -> std::optional<size_t> {
      std::lock_guard lock(mu);
      if (runs[self].first < runs[self].second) return runs[self].first++;
      size_t best = self;
      for (size_t t = 0; t < threads_; t++) {
        if (runs[t].second - runs[t].first > runs[best].second - runs[best].first) best = t;
      }
      if (runs[best].first == runs[best].second) return std::nullopt;
      return --runs[best].second;
    };
    auto work = [&](size_t self, PageSource* own) {
      std::unique_ptr<PageSource> clone;
      try {
        if (own == nullptr) {
          clone = r_.source().Clone();
          own = clone.get();
        }
        Tree tree(*own, meta_);
        CheckState cs;
        cs.name = cs_.name;
        cs.strict = false;
        cs.check_order = true;
        cs.shared = &cs_;
        while (!failed.load(std::memory_order_relaxed)) {
          std::optional<size_t> next = take(self);
          if (!next) break;
          const size_t u = *next;
          LeafHasher h(tree, cs);
          const Unit& unit = units[u];
          internal::WalkBounds b{&unit.lo, unit.has_hi ? &unit.hi : nullptr, depth};
          tree.Walk(std::nullopt, unit.root, cs, [&](const Node& n) { h.Leaf(n, is_key); }, b);
          if (cs.problem_count != 0 || !h.hash_error.empty()) failed = true;
          results[u] = UnitResult{h.crc, h.hashed, h.total_key, h.revision};
        }
      } catch (...) {
        failed = true;
      }
    };
    std::vector<std::thread> helpers;
    for (size_t t = 1; t < threads_; t++) helpers.emplace_back(work, t, nullptr);
    work(0, &r_.source());
    for (std::thread& t : helpers) t.join();
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

  // Units for the children of branch page n, whose own upper bound is (hi, has_hi).
  static void AddChildren(const Node& n, Bytes hi, bool has_hi, std::vector<Unit>* out) {
    for (size_t i = 0; i < n.count; i++) {
      Unit u;
      u.root = n.child(i);
      u.lo = n.key(i);
      u.hi = hi;
      u.has_hi = has_hi;
      if (i + 1 < n.count) {
        u.hi = n.key(i + 1);
        u.has_hi = true;
      }
      out->push_back(std::move(u));
    }
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
