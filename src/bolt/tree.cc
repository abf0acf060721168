#include "bolt/tree.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace etcdsafe::bolt::internal {
namespace {

[[noreturn]] void Corrupt(const PageSource& src, Pgid id, const std::string& msg) {
  throw Error(ErrorCode::kDataLoss, src.name() + ": page " + std::to_string(id) + ": " + msg);
}

}  // namespace

std::string PageTypeName(uint16_t flags) {
  if (flags & kBranchPageFlag) return "branch";
  if (flags & kLeafPageFlag) return "leaf";
  if (flags & kMetaPageFlag) return "meta";
  if (flags & kFreelistPageFlag) return "freelist";
  char buf[32];
  std::snprintf(buf, sizeof buf, "unknown<%02x>", flags);
  return buf;
}

Node OwnedCopy(const Node& n) {
  auto buf = std::make_shared<std::vector<uint8_t>>(n.ref.data(), n.ref.data() + n.ref.size());
  const uint8_t* p = buf->data();
  auto rebase = [&](const uint8_t* q) { return q == nullptr ? nullptr : p + (q - n.ref.data()); };
  Node c = n;
  c.base = rebase(n.base);
  c.data_begin = rebase(n.data_begin);
  c.data_end = rebase(n.data_end);
  c.ref = PageRef(p, n.ref.size(), n.ref.offset(), std::move(buf));
  return c;
}

std::string ShortRevisionKeyError(size_t key_size, Pgid page) {
  return "bucket key: key of " + std::to_string(key_size) + " bytes is not a revision (page " +
         std::to_string(page) + ")";
}

KeyLeafFacts KeyBucketLeafFacts(const Node& n) {
  KeyLeafFacts f;
  for (size_t i = 0; i < n.count && f.hash_error.empty(); i++) {
    if (n.key(i).size() < 17) f.hash_error = ShortRevisionKeyError(n.key(i).size(), n.id);
  }
  Bytes last = n.key(n.count - 1);
  if (last.size() >= 8) f.revision = static_cast<int64_t>(LoadBE64(last.data()));
  return f;
}

int CompareBytes(Bytes a, Bytes b) {
  size_t n = std::min(a.size(), b.size());
  int c = n == 0 ? 0 : std::memcmp(a.data(), b.data(), n);
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

void CheckState::Problem(std::string msg) {
  if (strict) throw Error(ErrorCode::kDataLoss, name + ": " + msg);
  ++problem_count;
  if (problems.size() < kMaxStoredProblems) problems.push_back(std::move(msg));
}

bool CheckState::TestAndSetSeen(Pgid id) {
  const uint64_t bit = uint64_t{1} << (id & 63);
  if (shared != nullptr) {
    // Two threads reaching one page: exactly one of them sees the bit already set.
    return (std::atomic_ref<uint64_t>(shared->seen[id >> 6]).fetch_or(bit, std::memory_order_relaxed) & bit) != 0;
  }
  uint64_t& word = seen[id >> 6];
  bool was = (word & bit) != 0;
  word |= bit;
  return was;
}

std::optional<std::string> ValidateNodeBytes(Node& n) {
  uint64_t table = kPageHeaderSize + uint64_t{16} * n.count;
  if (table > n.size) {
    return std::string(n.is_inline ? "inline bucket page: " : "") + std::to_string(n.count) +
           " elements do not fit in " + std::to_string(n.size) + " bytes";
  }
  if (n.is_leaf()) {
    bool contiguous = true;
    uint64_t prev_end = 0;
    uint64_t first = 0;
    for (size_t i = 0; i < n.count; i++) {
      const uint8_t* e = n.elem(i);
      uint64_t off = kPageHeaderSize + 16 * i;
      uint64_t start = off + LoadLE32(e + 4);
      uint64_t end = start + LoadLE32(e + 8) + LoadLE32(e + 12);
      if (end > n.size) {
        return std::string(n.is_inline ? "inline bucket page: " : "") + "leaf element " +
               std::to_string(i) + " is out of page bounds";
      }
      if (i == 0) {
        first = start;
      } else if (start != prev_end) {
        contiguous = false;
      }
      if (LoadLE32(e) & kBucketLeafFlag) contiguous = false;
      prev_end = end;
    }
    n.contiguous = contiguous && n.count > 0;
    if (n.contiguous) {
      n.data_begin = n.base + first;
      n.data_end = n.base + prev_end;
    }
  } else {
    for (size_t i = 0; i < n.count; i++) {
      const uint8_t* e = n.elem(i);
      uint64_t off = kPageHeaderSize + 16 * i;
      uint64_t end = off + LoadLE32(e) + uint64_t{LoadLE32(e + 4)};
      if (end > n.size) {
        return "branch element " + std::to_string(i) + " is out of page bounds";
      }
    }
  }
  return std::nullopt;
}

void Tree::ValidateNode(Node& n) {
  if (auto e = ValidateNodeBytes(n)) Corrupt(src_, n.id, *e);
}

Node Tree::LoadPage(Pgid id) {
  if (id >= meta_.pgid) {
    Corrupt(src_, id, "out of bounds: " + std::to_string(meta_.pgid));
  }
  // Point lookups: exact reads (PageSource::ReadExact), the first page, then the overflow
  // run only when there is one.
  PageRef head = src_.ReadExact(id * kPageSize, kPageSize);
  uint32_t overflow = LoadLE32(head.data() + kPageOverflowOffset);
  if (uint64_t{overflow} >= meta_.pgid - id) {
    Corrupt(src_, id, "overflow of " + std::to_string(overflow) +
                          " pages runs past the high-water mark " + std::to_string(meta_.pgid));
  }
  Node n;
  n.ref = overflow == 0 ? std::move(head) : src_.ReadExact(id * kPageSize, (uint64_t{overflow} + 1) * kPageSize);
  n.base = n.ref.data();
  n.size = n.ref.size();
  n.id = id;
  n.flags = LoadLE16(n.base + kPageFlagsOffset);
  n.count = LoadLE16(n.base + kPageCountOffset);
  return n;
}

Node Tree::LoadTreePage(Pgid id) {
  Node n = LoadPage(id);
  if (!(n.flags & (kBranchPageFlag | kLeafPageFlag))) {
    Corrupt(src_, id, "invalid type: " + PageTypeName(n.flags));
  }
  ValidateNode(n);
  return n;
}

std::optional<Node> Tree::InlineOrRoot(const Node& holder, size_t i, Pgid* root_pgid) {
  Bytes v = holder.value(i);
  if (v.size() < kBucketHeaderSize) {
    Corrupt(src_, holder.id, "bucket value of " + std::to_string(v.size()) +
                                 " bytes is shorter than a bucket header");
  }
  Pgid root = LoadLE64(v.data());
  *root_pgid = root;
  if (root != 0) return std::nullopt;
  if (v.size() < kBucketHeaderSize + kPageHeaderSize) {
    Corrupt(src_, holder.id, "inline bucket value of " + std::to_string(v.size()) +
                                 " bytes has no page header");
  }
  Node n;
  n.ref = holder.ref;
  n.base = v.data() + kBucketHeaderSize;
  n.size = v.size() - kBucketHeaderSize;
  n.id = holder.id;
  n.is_inline = true;
  n.flags = LoadLE16(n.base + kPageFlagsOffset);
  n.count = LoadLE16(n.base + kPageCountOffset);
  if (!n.is_leaf()) Corrupt(src_, holder.id, "inline bucket page is not a leaf");
  ValidateNode(n);
  return n;
}

std::optional<Node> Tree::Visit(Pgid id, CheckState& cs) {
  const std::string sid = std::to_string(id);
  if (id >= meta_.pgid) {
    cs.Problem("page " + sid + ": out of bounds: " + std::to_string(meta_.pgid));
    return std::nullopt;
  }
  PageRef head = src_.Read(id * kPageSize, kPageHeaderSize);
  uint32_t overflow = LoadLE32(head.data() + kPageOverflowOffset);
  uint16_t flags = LoadLE16(head.data() + kPageFlagsOffset);
  Pgid header_id = LoadLE64(head.data() + kPageIdOffset);
  if (uint64_t{overflow} >= meta_.pgid - id) {
    cs.Problem("page " + sid + ": out of bounds: " + std::to_string(meta_.pgid) +
               " (overflow " + std::to_string(overflow) + ")");
    return std::nullopt;
  }
  bool again = false;
  for (uint64_t k = 0; k <= overflow; k++) {
    bool was = cs.TestAndSetSeen(id + k);
    if (k == 0) again = was;
    if (was) cs.Problem("page " + std::to_string(id + k) + ": multiple references");
  }
  if (cs.IsFreed(id)) {
    cs.Problem("page " + sid + ": reachable freed");
  } else if (!(flags & (kBranchPageFlag | kLeafPageFlag))) {
    cs.Problem("page " + sid + ": invalid type: " + PageTypeName(flags));
    return std::nullopt;
  }
  if (header_id != id) {
    cs.Problem("page " + sid + ": page id mismatch: header says " + std::to_string(header_id));
  }
  // A page reached twice was already walked; walking it again could blow up
  // exponentially on crafted input.
  if (again) return std::nullopt;
  Node n;
  n.ref = src_.Read(id * kPageSize, (uint64_t{overflow} + 1) * kPageSize);
  n.base = n.ref.data();
  n.size = n.ref.size();
  n.id = id;
  n.flags = flags;
  n.count = LoadLE16(n.base + kPageCountOffset);
  ValidateNode(n);
  return n;
}

std::string KeyBelowParentProblem(Pgid id, bool leaf) {
  return "page " + std::to_string(id) + ": first key of " + (leaf ? "leaf" : "branch") +
         " page is below its key in the parent branch page";
}

std::string KeyNotGreaterProblem(Pgid id, bool leaf, size_t i) {
  return "page " + std::to_string(id) + ": key[" + std::to_string(i) + "] of " +
         (leaf ? "leaf" : "branch") + " page is not greater than key[" + std::to_string(i - 1) +
         "]";
}

std::string KeyNotBelowNextProblem(Pgid id, bool leaf) {
  return "page " + std::to_string(id) + ": last key of " + (leaf ? "leaf" : "branch") +
         " page is not below the next key in the parent branch page";
}

void CheckOrder(const Node& n, const Bytes* lo, const Bytes* hi, CheckState& cs) {
  if (!cs.check_order || n.count == 0) return;
  Bytes prev = n.key(0);
  if (lo != nullptr && CompareBytes(prev, *lo) < 0) cs.Problem(KeyBelowParentProblem(n.id, n.is_leaf()));
  for (size_t i = 1; i < n.count; i++) {
    Bytes k = n.key(i);
    if (CompareBytes(k, prev) <= 0) cs.Problem(KeyNotGreaterProblem(n.id, n.is_leaf(), i));
    prev = k;
  }
  if (hi != nullptr && CompareBytes(prev, *hi) >= 0) cs.Problem(KeyNotBelowNextProblem(n.id, n.is_leaf()));
}

namespace {

// Units for the children of branch page n, whose own upper bound is (hi, has_hi).
void AddChildren(const Node& n, Bytes hi, bool has_hi, std::vector<Subtree>* out) {
  for (size_t i = 0; i < n.count; i++) {
    Subtree u;
    u.root = n.child(i);
    u.lo = n.key(i);
    u.hi = hi;
    u.has_hi = has_hi;
    if (i + 1 < n.count) {
      u.hi = n.key(i + 1);
      u.has_hi = true;
    }
    out->push_back(u);
  }
}

}  // namespace

bool Split(Tree& t, Pgid root, CheckState& cs, size_t want, SplitTree* out) {
  if (root == 0) return false;
  const uint64_t problems = cs.problem_count;
  out->pinned.clear();
  out->units.clear();
  std::optional<Node> top = t.Visit(root, cs);
  if (!top) return false;
  CheckOrder(*top, nullptr, nullptr, cs);
  if (top->is_leaf() || cs.problem_count != problems) return false;
  out->pinned.push_back(OwnedCopy(*top));
  AddChildren(out->pinned.back(), Bytes{}, false, &out->units);
  out->depth = 1;
  const Pgid pgid = t.meta().pgid;
  while (out->units.size() < want && out->depth < kMaxTreeDepth) {
    for (const Subtree& u : out->units) {
      if (u.root < 2 || u.root >= pgid ||
          !(LoadLE16(t.source().Read(u.root * kPageSize, kPageHeaderSize).data() + kPageFlagsOffset) &
            kBranchPageFlag)) {
        return out->units.size() >= 2;
      }
    }
    std::vector<Subtree> next;
    for (const Subtree& u : out->units) {
      std::optional<Node> n = t.Visit(u.root, cs);
      if (!n || n->is_leaf()) return false;
      CheckOrder(*n, &u.lo, u.has_hi ? &u.hi : nullptr, cs);
      if (cs.problem_count != problems) return false;
      out->pinned.push_back(OwnedCopy(*n));
      AddChildren(out->pinned.back(), u.hi, u.has_hi, &next);
    }
    out->units = std::move(next);
    out->depth++;
  }
  return out->units.size() >= 2;
}

WalkWorkers MakeWalkWorkers(PageSource& own, size_t threads, CheckState& shared) {
  WalkWorkers w;
  w.own = &own;
  w.clones.resize(threads);
  w.states.resize(threads);
  for (size_t t = 0; t < threads; t++) {
    if (t > 0) w.clones[t] = own.Clone();
    w.states[t].name = shared.name;
    w.states[t].strict = shared.strict;
    w.states[t].check_order = true;
    w.states[t].shared = &shared;
  }
  return w;
}

void RunUnits(size_t units, size_t threads, const std::atomic<bool>& stop,
              const std::function<void(size_t worker, size_t unit)>& work) {
  threads = std::max<size_t>(threads, 1);
  std::mutex mu;
  std::vector<std::pair<size_t, size_t>> runs(threads);
  for (size_t t = 0; t < threads; t++) runs[t] = {units * t / threads, units * (t + 1) / threads};
  auto take = [&](size_t self) -> std::optional<size_t> {
    std::lock_guard lock(mu);
    if (runs[self].first < runs[self].second) return runs[self].first++;
    size_t best = self;
    for (size_t t = 0; t < threads; t++) {
      if (runs[t].second - runs[t].first > runs[best].second - runs[best].first) best = t;
    }
    if (runs[best].first == runs[best].second) return std::nullopt;
    return --runs[best].second;
  };
  auto loop = [&](size_t self) {
    while (!stop.load(std::memory_order_relaxed)) {
      std::optional<size_t> next = take(self);
      if (!next) return;
      work(self, *next);
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; t++) helpers.emplace_back(loop, t);
  loop(0);
  for (std::thread& h : helpers) h.join();
}

}  // namespace etcdsafe::bolt::internal
