// Internal B+tree machinery shared by Reader and Inspect: decoded page views with all
// element ranges validated, and an iterative in-order walker that performs bbolt's
// Tx.Check page checks (bounds, multiple references, reachable freed, type, key order)
// either collecting problems (Inspect) or throwing on the first one (Reader).
// Not part of the public API. Thread-compatible.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/error.h"
#include "bolt/format.h"
#include "bolt/page_source.h"
#include "bolt/reader.h"

namespace etcdsafe::bolt::internal {

// bbolt's page.typ() names: "branch", "leaf", "meta", "freelist", "unknown<xx>".
std::string PageTypeName(uint16_t flags);

// A branch or leaf page (or an inline bucket's leaf image) whose element table and
// key/value ranges have been checked to lie inside the page bytes.
struct Node {
  PageRef ref;                   // pins the bytes
  const uint8_t* base = nullptr;  // page header
  size_t size = 0;               // bytes available from base (all overflow pages)
  Pgid id = 0;                   // page id; an inline image reports its holder's id
  uint16_t flags = 0;
  uint16_t count = 0;
  bool is_inline = false;
  // Leaf only: true when no element is a bucket and key/value bytes are packed back to
  // back in element order (bbolt's own layout), so [data_begin, data_end) can be hashed
  // in one call.
  bool contiguous = false;
  const uint8_t* data_begin = nullptr;
  const uint8_t* data_end = nullptr;

  bool is_leaf() const { return (flags & kLeafPageFlag) != 0; }
  const uint8_t* elem(size_t i) const { return base + kPageHeaderSize + 16 * i; }
  uint32_t leaf_flags(size_t i) const { return LoadLE32(elem(i)); }
  Bytes key(size_t i) const {
    const uint8_t* e = elem(i);
    return is_leaf() ? Bytes{e + LoadLE32(e + 4), LoadLE32(e + 8)}
                     : Bytes{e + LoadLE32(e), LoadLE32(e + 4)};
  }
  Bytes value(size_t i) const {  // leaf only
    const uint8_t* e = elem(i);
    return {e + LoadLE32(e + 4) + LoadLE32(e + 8), LoadLE32(e + 12)};
  }
  Pgid child(size_t i) const { return LoadLE64(elem(i) + 8); }  // branch only
  uint64_t file_offset(const uint8_t* p) const {
    return ref.offset() + static_cast<uint64_t>(p - ref.data());
  }
};

// A copy of n that owns its page bytes instead of pinning the PageSource window they sit
// in. Walks hold on to branch pages while they visit the leaves below; holding copies
// keeps memory at a few KiB per level instead of one window (2 MiB) per level.
Node OwnedCopy(const Node& n);

int CompareBytes(Bytes a, Bytes b);

// etcdctl's status facts from one non-empty leaf of bucket "key": the hash error for the
// first key too short to be a revision (empty if none), and the main revision of the
// leaf's last key when it has 8 bytes or more.
struct KeyLeafFacts {
  std::string hash_error;
  std::optional<int64_t> revision;
};
KeyLeafFacts KeyBucketLeafFacts(const Node& n);
std::string ShortRevisionKeyError(size_t key_size, Pgid page);

// Problem sink. Strict mode throws Error(kDataLoss, "<name>: <problem>") at once.
struct CheckState {
  std::string name;  // file name, for strict-mode errors
  bool strict = true;
  bool check_order = true;
  std::vector<uint64_t> seen;   // bitmap over [0, pgid): page reached
  std::vector<uint64_t> freed;  // bitmap over [0, pgid); empty when no stored freelist
  std::vector<std::string> problems;
  uint64_t problem_count = 0;

  // Set on the per-thread states of a parallel walk: pages are marked in (atomically)
  // and freed pages read from this state's bitmaps instead of their own.
  CheckState* shared = nullptr;

  static constexpr size_t kMaxStoredProblems = 1000;

  // Marks page id reached; returns whether it already was.
  bool TestAndSetSeen(Pgid id);
  bool IsFreed(Pgid id) const {
    const std::vector<uint64_t>& f = shared != nullptr ? shared->freed : freed;
    return !f.empty() && Test(f, id);
  }

  void Problem(std::string msg);
  static bool Test(const std::vector<uint64_t>& bm, Pgid id) {
    return (bm[id >> 6] >> (id & 63)) & 1;
  }
  static void Set(std::vector<uint64_t>& bm, Pgid id) { bm[id >> 6] |= uint64_t{1} << (id & 63); }
};

// Checks n's element table and key/value ranges against n.size and sets contiguous /
// data_begin / data_end. Returns the problem text (without "name: page N: "), e.g.
// "leaf element 3 is out of page bounds", or nullopt when the node is well formed.
// Shared by Tree and the StreamInspector.
std::optional<std::string> ValidateNodeBytes(Node& n);

// bbolt >= 1.3.7 key-order messages (shared with the StreamInspector).
std::string KeyBelowParentProblem(Pgid id, bool leaf);
std::string KeyNotGreaterProblem(Pgid id, bool leaf, size_t i);
std::string KeyNotBelowNextProblem(Pgid id, bool leaf);

// Key-order check of one node against its parent's bounds (lo/hi may be null).
void CheckOrder(const Node& n, const Bytes* lo, const Bytes* hi, CheckState& cs);

// Where a walk of a subtree starts: its key bounds from the parent branch (null: none)
// and the depth of its root, for the depth limit.
struct WalkBounds {
  const Bytes* lo = nullptr;
  const Bytes* hi = nullptr;
  size_t depth = 0;
};

class Tree {
 public:
  Tree(PageSource& src, const Meta& meta) : src_(src), meta_(meta) {}

  const Meta& meta() const { return meta_; }
  PageSource& source() { return src_; }

  // Loads page `id` with its overflow pages and validates its elements. Bounds against
  // meta.pgid are checked here (throws), type is not. Used for point lookups.
  Node LoadPage(Pgid id);
  // Loads and validates `id` as a branch/leaf page in strict mode.
  Node LoadTreePage(Pgid id);
  // The root node of the bucket stored in holder's leaf element i (flag 0x01):
  // an inline image, or nullopt plus *root_pgid for a page-based bucket.
  std::optional<Node> InlineOrRoot(const Node& holder, size_t i, Pgid* root_pgid);

  // Checked visit of a child page during a walk; nullopt means "do not descend".
  std::optional<Node> Visit(Pgid id, CheckState& cs);

  // In-order walk of the tree rooted at `root` (a page id) or `inline_root`, calling
  // on_leaf(const Node&) for every leaf. Performs the page checks in `cs`.
  template <class F>
  void Walk(std::optional<Node> inline_root, Pgid root, CheckState& cs, F&& on_leaf, WalkBounds bounds = {});

 private:
  void ValidateNode(Node& n);

  PageSource& src_;
  const Meta& meta_;
};

inline constexpr size_t kMaxTreeDepth = 64;

// Parallel walks: a bucket's tree cut into subtrees that threads walk independently.
struct Subtree {
  Pgid root = 0;
  Bytes lo, hi;  // key bounds from the parent branch page (hi only when has_hi)
  bool has_hi = false;
};
struct SplitTree {
  std::vector<Node> pinned;     // owned copies of the branch pages the bounds point into
  std::vector<Subtree> units;   // in key order: walking them in turn is the whole walk
  size_t depth = 0;             // tree depth of the units' roots (for WalkBounds)
};
// Visits the top branch levels of the tree at page `root` in key order with a walk's
// checks (Tree::Visit and CheckOrder into cs; a strict cs throws as a walk would) until
// there are at least `want` subtrees or the next level is not all branch pages (a B+tree's
// leaves all sit at one depth, so leaves are left to the threads). Returns false when the
// tree is not worth or not safe to split: root 0 (inline bucket), a leaf root, a page
// Visit declined, a problem recorded in cs, or fewer than 2 units. Pages it visited are
// marked in cs.seen either way.
bool Split(Tree& t, Pgid root, CheckState& cs, size_t want, SplitTree* out);

// What each worker of a parallel walk reads through and records into: worker 0 the
// caller's own page source, the others clones of it (own file windows); each CheckState
// takes `shared`'s name and strictness and marks pages in its bitmaps (CheckState::shared).
struct WalkWorkers {
  PageSource* own = nullptr;
  std::vector<std::unique_ptr<PageSource>> clones;  // [0] unused
  std::vector<CheckState> states;
  PageSource& source(size_t w) { return w == 0 ? *own : *clones[w]; }
};
WalkWorkers MakeWalkWorkers(PageSource& own, size_t threads, CheckState& shared);

// Runs work(worker, unit) for every unit in [0, units) on `threads` workers (worker 0 is
// the calling thread): each worker takes a contiguous run of units in order (neighbouring
// subtrees share file windows) and, when done, units from the back of the longest other
// run. Workers stop taking units once `stop` is set. work must not throw.
void RunUnits(size_t units, size_t threads, const std::atomic<bool>& stop,
              const std::function<void(size_t worker, size_t unit)>& work);

template <class F>
void Tree::Walk(std::optional<Node> inline_root, Pgid root, CheckState& cs, F&& on_leaf, WalkBounds bounds) {
  struct Frame {
    Node node;
    size_t next = 0;
    Bytes hi;
    bool has_hi = false;
  };
  std::vector<Frame> stack;
  stack.reserve(8);
  const Bytes top_hi = bounds.hi != nullptr ? *bounds.hi : Bytes{};
  if (inline_root) {
    CheckOrder(*inline_root, bounds.lo, bounds.hi, cs);
    stack.push_back({std::move(*inline_root), 0, top_hi, bounds.hi != nullptr});
  } else {
    std::optional<Node> n = Visit(root, cs);
    if (!n) return;
    CheckOrder(*n, bounds.lo, bounds.hi, cs);
    stack.push_back({n->is_leaf() ? std::move(*n) : OwnedCopy(*n), 0, top_hi, bounds.hi != nullptr});
  }
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.node.is_leaf()) {
      on_leaf(static_cast<const Node&>(f.node));
      stack.pop_back();
      continue;
    }
    if (f.next >= f.node.count) {
      stack.pop_back();
      continue;
    }
    size_t i = f.next++;
    Bytes lo = f.node.key(i);
    Bytes hi = f.hi;
    bool has_hi = f.has_hi;
    if (i + 1 < f.node.count) {
      hi = f.node.key(i + 1);
      has_hi = true;
    }
    Pgid child = f.node.child(i);
    Pgid parent = f.node.id;
    if (stack.size() + bounds.depth >= kMaxTreeDepth) {
      throw Error(ErrorCode::kDataLoss, cs.name + ": page " + std::to_string(parent) +
                                            ": tree deeper than " +
                                            std::to_string(kMaxTreeDepth) + " levels");
    }
    std::optional<Node> c = Visit(child, cs);
    if (!c) continue;
    CheckOrder(*c, &lo, has_hi ? &hi : nullptr, cs);
    stack.push_back({c->is_leaf() ? std::move(*c) : OwnedCopy(*c), 0, hi, has_hi});
  }
}

}  // namespace etcdsafe::bolt::internal
