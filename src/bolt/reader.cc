#include "bolt/reader.h"

#include <atomic>
#include <exception>
#include <mutex>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/tree.h"

namespace etcdsafe::bolt {

using internal::CheckState;
using internal::CompareBytes;
using internal::Node;
using internal::Tree;

std::optional<std::string> ValidateMeta(Bytes page, Meta* out) {
  const uint8_t* p = page.data();
  Meta m;
  m.page_size = LoadLE32(p + kMetaPageSizeOffset);
  m.flags = LoadLE32(p + kMetaFlagsOffset);
  m.root = LoadLE64(p + kMetaRootOffset);
  m.sequence = LoadLE64(p + kMetaSequenceOffset);
  m.freelist = LoadLE64(p + kMetaFreelistOffset);
  m.pgid = LoadLE64(p + kMetaPgidOffset);
  m.txid = LoadLE64(p + kMetaTxidOffset);
  *out = m;
  if (LoadLE32(p + kMetaMagicOffset) != kMagic) return "invalid database";
  if (LoadLE32(p + kMetaVersionOffset) != kVersion) return "version mismatch";
  uint64_t sum = LoadLE64(p + kMetaChecksumOffset);
  // bbolt 1.3.6 (etcd 3.4.23) accepts a zero checksum; we follow the reference tool.
  if (sum != 0 && sum != Fnv1a64(page.subspan(kMetaMagicOffset, kMetaChecksumOffset - kMetaMagicOffset))) {
    return "checksum error";
  }
  if (m.page_size != kPageSize) return "unsupported page size " + std::to_string(m.page_size);
  return std::nullopt;
}

Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;
Reader::~Reader() = default;

const std::string& Reader::name() const { return source_->name(); }
uint64_t Reader::file_size() const { return source_->size(); }

Reader Reader::Open(const std::string& path) {
  Reader r;
  r.source_ = PageSource::OpenFile(path);
  r.Init();
  return r;
}

Reader Reader::FromMemory(Bytes data, std::string name) {
  Reader r;
  r.source_ = PageSource::FromMemory(data, std::move(name));
  r.Init();
  return r;
}

void Reader::Init() {
  const std::string& n = source_->name();
  uint64_t size = source_->size();
  if (size < kPageSize) throw Error(ErrorCode::kDataLoss, n + ": invalid database");
  if (size < 2 * kPageSize) throw Error(ErrorCode::kDataLoss, n + ": file size too small");
  PageRef pages = source_->Read(0, 2 * kPageSize);
  Meta m[2];
  std::optional<std::string> err[2];
  for (int i = 0; i < 2; i++) {
    err[i] = ValidateMeta(pages.bytes().subspan(i * kPageSize, kPageSize), &m[i]);
    m[i].page = i;
  }
  if (err[0] && err[1]) throw Error(ErrorCode::kDataLoss, n + ": " + *err[0]);
  int a = m[1].txid > m[0].txid ? 1 : 0;
  int pick = err[a] ? 1 - a : a;
  meta_ = m[pick];
  const std::string where = n + ": meta page " + std::to_string(pick) + ": ";
  if (meta_.pgid < 2) {
    throw Error(ErrorCode::kDataLoss, where + "high-water mark " + std::to_string(meta_.pgid) +
                                          " is below 2");
  }
  if (meta_.pgid > size / kPageSize) {
    // bbolt would mmap past EOF and crash with SIGBUS on the first access.
    throw Error(ErrorCode::kDataLoss,
                n + ": truncated: file is " + std::to_string(size) + " bytes, meta page " +
                    std::to_string(pick) + " says " + std::to_string(meta_.pgid) + " pages (" +
                    (meta_.pgid > (~uint64_t{0}) / kPageSize
                         ? std::string("overflow")
                         : std::to_string(meta_.pgid * kPageSize)) +
                    " bytes)");
  }
}

namespace {

CheckState StrictState(const Reader& r) {
  CheckState cs;
  cs.name = r.name();
  cs.strict = true;
  cs.seen.assign((r.meta().pgid + 63) / 64, 0);
  CheckState::Set(cs.seen, 0);
  CheckState::Set(cs.seen, 1);
  return cs;
}

struct Found {
  Node leaf;
  size_t index = 0;
};

// Point lookup of `key` in the tree rooted at inline_root / root.
std::optional<Found> Find(Tree& t, std::optional<Node> inline_root, Pgid root, Bytes key) {
  Node n = inline_root ? std::move(*inline_root) : t.LoadTreePage(root);
  for (size_t depth = 0;; depth++) {
    if (depth > internal::kMaxTreeDepth) {
      throw Error(ErrorCode::kDataLoss, t.source().name() + ": page " + std::to_string(n.id) +
                                            ": tree too deep");
    }
    size_t lo = 0, hi = n.count;  // first index whose key is > key (leaf: >= key)
    if (n.is_leaf()) {
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (CompareBytes(n.key(mid), key) < 0) lo = mid + 1; else hi = mid;
      }
      if (lo < n.count && CompareBytes(n.key(lo), key) == 0) return Found{std::move(n), lo};
      return std::nullopt;
    }
    if (n.count == 0) return std::nullopt;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (CompareBytes(n.key(mid), key) <= 0) lo = mid + 1; else hi = mid;
    }
    size_t idx = lo == 0 ? 0 : lo - 1;
    n = t.LoadTreePage(n.child(idx));
  }
}

struct BucketRoot {
  std::optional<Node> inline_root;
  Pgid root = 0;
};

std::optional<BucketRoot> FindBucket(Tree& t, std::string_view name) {
  std::optional<Found> f = Find(t, std::nullopt, t.meta().root, AsBytes(name));
  if (!f) return std::nullopt;
  if (!(f->leaf.leaf_flags(f->index) & kBucketLeafFlag)) {
    throw Error(ErrorCode::kDataLoss, t.source().name() + ": page " + std::to_string(f->leaf.id) +
                                          ": root entry " + std::string(name) +
                                          " is not a bucket");
  }
  BucketRoot b;
  b.inline_root = t.InlineOrRoot(f->leaf, f->index, &b.root);
  return b;
}

}  // namespace

void Reader::ForEachBucket(const std::function<void(std::string_view)>& fn) {
  Tree t(*source_, meta_);
  CheckState cs = StrictState(*this);
  t.Walk(std::nullopt, meta_.root, cs, [&](const Node& leaf) {
    for (size_t i = 0; i < leaf.count; i++) {
      if (!(leaf.leaf_flags(i) & kBucketLeafFlag)) {
        throw Error(ErrorCode::kDataLoss, name() + ": page " + std::to_string(leaf.id) +
                                              ": root entry " + std::string(AsString(leaf.key(i))) +
                                              " is not a bucket");
      }
      fn(AsString(leaf.key(i)));
    }
  });
}

bool Reader::HasBucket(std::string_view bucket) {
  Tree t(*source_, meta_);
  return FindBucket(t, bucket).has_value();
}

void Reader::ForEach(std::string_view bucket, const KvFn& fn) {
  ForEachEntry(bucket, [&](Bytes k, Bytes v, bool is_bucket) { fn(k, is_bucket ? Bytes{} : v); });
}

void Reader::ForEachEntry(std::string_view bucket, const EntryFn& fn) {
  Tree t(*source_, meta_);
  std::optional<BucketRoot> b = FindBucket(t, bucket);
  if (!b) {
    throw Error(ErrorCode::kNotFound, name() + ": no bucket " + std::string(bucket));
  }
  CheckState cs = StrictState(*this);
  t.Walk(std::move(b->inline_root), b->root, cs, [&](const Node& leaf) {
    for (size_t i = 0; i < leaf.count; i++) {
      fn(leaf.key(i), leaf.value(i), (leaf.leaf_flags(i) & kBucketLeafFlag) != 0);
    }
  });
}

void Reader::ForEachEntryParallel(std::string_view bucket, size_t threads, const WorkerEntryFn& fn,
                                  uint64_t min_pages) {
  auto sequential = [&] { ForEachEntry(bucket, [&](Bytes k, Bytes v, bool b) { fn(0, k, v, b); }); };
  if (threads < 2 || meta_.pgid < min_pages) return sequential();
  Tree t(*source_, meta_);
  std::optional<BucketRoot> b = FindBucket(t, bucket);
  if (!b) throw Error(ErrorCode::kNotFound, name() + ": no bucket " + std::string(bucket));
  if (b->inline_root) return sequential();
  CheckState cs = StrictState(*this);
  internal::SplitTree split;
  bool split_ok = false;
  try {
    split_ok = internal::Split(t, b->root, cs, threads * 16, &split);
  } catch (const Error&) {
    // the sequential walk below throws it again, in its own words
  }
  if (!split_ok) return sequential();

  internal::WalkWorkers workers = internal::MakeWalkWorkers(*source_, threads, cs);
  struct Stopped {};
  std::atomic<bool> failed{false};
  std::exception_ptr first;  // set before `failed`, so a Stopped is never taken for it
  std::mutex mu;
  internal::RunUnits(split.units.size(), threads, failed, [&](size_t w, size_t u) {
    try {
      Tree tw(workers.source(w), meta_);
      const internal::Subtree& unit = split.units[u];
      internal::WalkBounds wb{&unit.lo, unit.has_hi ? &unit.hi : nullptr, split.depth};
      tw.Walk(std::nullopt, unit.root, workers.states[w], [&](const Node& leaf) {
        if (failed.load(std::memory_order_relaxed)) throw Stopped{};  // another worker failed
        for (size_t i = 0; i < leaf.count; i++) {
          fn(w, leaf.key(i), leaf.value(i), (leaf.leaf_flags(i) & kBucketLeafFlag) != 0);
        }
      }, wb);
    } catch (...) {
      std::lock_guard lock(mu);
      if (!first) first = std::current_exception();
      failed = true;
    }
  });
  if (!failed) return;
  sequential();
  std::rethrow_exception(first);
}

std::optional<uint64_t> Reader::ValueOffset(std::string_view bucket, std::string_view key) {
  Tree t(*source_, meta_);
  std::optional<BucketRoot> b = FindBucket(t, bucket);
  if (!b) return std::nullopt;
  std::optional<Found> f = Find(t, std::move(b->inline_root), b->root, AsBytes(key));
  if (!f || (f->leaf.leaf_flags(f->index) & kBucketLeafFlag)) return std::nullopt;
  return f->leaf.file_offset(f->leaf.value(f->index).data());
}

std::optional<std::string> Reader::Get(std::string_view bucket, std::string_view key) {
  Tree t(*source_, meta_);
  std::optional<BucketRoot> b = FindBucket(t, bucket);
  if (!b) return std::nullopt;
  std::optional<Found> f = Find(t, std::move(b->inline_root), b->root, AsBytes(key));
  if (!f || (f->leaf.leaf_flags(f->index) & kBucketLeafFlag)) return std::nullopt;
  return std::string(AsString(f->leaf.value(f->index)));
}

std::optional<std::string> Reader::LastKey(std::string_view bucket) {
  Tree t(*source_, meta_);
  std::optional<BucketRoot> b = FindBucket(t, bucket);
  if (!b) return std::nullopt;
  {
    Node n = b->inline_root ? *b->inline_root : t.LoadTreePage(b->root);
    for (size_t depth = 0; !n.is_leaf() && n.count > 0 && depth <= internal::kMaxTreeDepth; depth++) {
      n = t.LoadTreePage(n.child(n.count - 1));
    }
    if (n.is_leaf() && n.count > 0) return std::string(AsString(n.key(n.count - 1)));
  }
  // Odd layouts (an empty last page): fall back to a full scan.
  std::optional<std::string> last;
  ForEach(bucket, [&](Bytes k, Bytes) { last.emplace(AsString(k)); });
  return last;
}

}  // namespace etcdsafe::bolt
