#include "bolt/stream_inspect.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "base/checksum.h"
#include "base/error.h"
#include "base/spill_store.h"
#include "bolt/page_source.h"
#include "bolt/tree.h"

namespace etcdsafe::bolt {

using internal::CheckState;
using internal::CompareBytes;
using internal::Node;

namespace {

constexpr size_t kMaxBucketNesting = 16;  // same as inspect.cc
constexpr uint64_t kNoRecord = ~uint64_t{0};
constexpr uint32_t kNoShortKey = ~uint32_t{0};

enum RecordKind : uint8_t { kError = 0, kPlainLeaf = 1, kImage = 2, kTooLarge = 3 };

struct PageInfo {
  uint64_t id;  // header id
  uint16_t flags;
  uint16_t count;
  uint32_t overflow;
  uint64_t record;  // Arena ref, kNoRecord when not summarised
};
static_assert(sizeof(PageInfo) == 24);

// A leaf without bucket elements, as summarised at stream time.
struct Plain {
  Pgid id = 0;
  uint16_t count = 0;
  uint32_t crc = 0;
  uint64_t kvlen = 0;
  uint32_t short_size = kNoShortKey;  // size of the first key < 17 bytes
  const uint8_t* bad = nullptr;       // n_bad u32 indices i with key[i] <= key[i-1]
  uint32_t n_bad = 0;
  Bytes first, last;
};

// A node of the walk: a plain-leaf summary or a page image.
struct Item {
  std::shared_ptr<const void> keep;  // holds the record's bytes (SpillStore chunk)
  bool plain = false;
  Plain leaf;
  Node node;
  bool is_leaf() const { return plain || node.is_leaf(); }
  uint16_t count() const { return plain ? leaf.count : node.count; }
};

void PutU32(std::vector<uint8_t>& a, uint32_t v) {
  uint8_t b[4];
  StoreLE32(b, v);
  a.insert(a.end(), b, b + 4);
}
void PutU64(std::vector<uint8_t>& a, uint64_t v) {
  uint8_t b[8];
  StoreLE64(b, v);
  a.insert(a.end(), b, b + 8);
}
void PutBytes(std::vector<uint8_t>& a, Bytes b) {
  PutU32(a, static_cast<uint32_t>(b.size()));
  a.insert(a.end(), b.begin(), b.end());
}

// One PageInfo per page, in page order, in a SpillStore: fixed-size records, so page p
// sits at a computed ref and needs no index of its own.
class PageTable {
 public:
  PageTable(size_t pages_per_chunk, size_t resident_chunks)
      : per_chunk_(pages_per_chunk), store_(pages_per_chunk * sizeof(PageInfo), resident_chunks) {}

  void Push(const PageInfo& p) {
    uint8_t rec[sizeof(PageInfo)];
    std::memcpy(rec, &p, sizeof p);
    uint64_t ref = store_.Append(rec, sizeof rec);
    if (ref != Ref(size_)) throw Error(ErrorCode::kInternal, "page table layout");
    size_++;
  }
  PageInfo operator[](Pgid p) {
    PageInfo out;
    store_.Read(Ref(p), &out, sizeof out);
    return out;
  }
  void SetRecord(Pgid p, uint64_t record) {
    uint8_t b[8];
    std::memcpy(b, &record, 8);
    store_.Overwrite(Ref(p) + offsetof(PageInfo, record), b, 8);
  }
  uint64_t size() const { return size_; }
  size_t memory_bytes() const { return store_.memory_bytes(); }
  const std::string& spill_error() const { return store_.spill_error(); }

 private:
  uint64_t Ref(uint64_t p) const { return ((p / per_chunk_) << 32) | ((p % per_chunk_) * sizeof(PageInfo)); }
  size_t per_chunk_;
  SpillStore store_;
  uint64_t size_ = 0;
};

}  // namespace

struct StreamInspector::Impl {
  std::string name;
  std::string fatal;  // sticky error text (kDataLoss)
  bool finished = false;
  uint64_t bytes = 0;
  uint64_t pages = 0;  // complete pages seen
  std::vector<uint8_t> page_buf;
  size_t page_fill = 0;

  std::vector<uint8_t> metas;  // pages 0 and 1
  bool have_meta = false;
  Meta meta;

  PageTable info;    // one per page < pgid
  SpillStore arena;  // records
  std::vector<uint8_t> scratch;

  // Logical pages still being assembled: start page -> end page (exclusive).
  std::map<Pgid, Pgid> open;
  std::multimap<Pgid, Pgid> open_by_end;
  std::vector<uint8_t> window;  // pages [win_base, ...)
  Pgid win_base = 0;

  // Stored freelist.
  std::string fl_error;
  bool fl_done = false;
  uint32_t fl_overflow = 0;
  std::vector<Pgid> fl_ids;

  Impl(std::string n, const StreamInspector::Limits& limits)
      : name(std::move(n)),
        info(limits.pages_per_chunk, limits.resident_page_chunks),
        arena(limits.record_chunk_bytes, limits.resident_record_chunks) {
    page_buf.resize(kPageSize);
  }

  [[noreturn]] void Fail(std::string msg) {
    fatal = std::move(msg);
    throw Error(ErrorCode::kDataLoss, fatal);
  }
  std::string PageMsg(Pgid id, const std::string& msg) const {
    return name + ": page " + std::to_string(id) + ": " + msg;
  }

  // ---- stream side ----

  void ChooseMeta() {
    Meta m[2];
    std::optional<std::string> err[2];
    for (int i = 0; i < 2; i++) {
      err[i] = ValidateMeta(Bytes{metas.data() + i * kPageSize, kPageSize}, &m[i]);
      m[i].page = i;
    }
    if (err[0] && err[1]) Fail(name + ": " + *err[0]);
    int a = m[1].txid > m[0].txid ? 1 : 0;
    int pick = err[a] ? 1 - a : a;
    meta = m[pick];
    if (meta.pgid < 2) {
      Fail(name + ": meta page " + std::to_string(pick) + ": high-water mark " +
           std::to_string(meta.pgid) + " is below 2");
    }
    have_meta = true;
    if (meta.freelist != kPgidNoFreelist && (meta.freelist >= meta.pgid || meta.freelist < 2)) {
      fl_error = PageMsg(meta.freelist, "freelist page out of bounds: " + std::to_string(meta.pgid));
    }
    metas.clear();
    metas.shrink_to_fit();
  }

  void Summarize(Pgid p, const uint8_t* d, size_t size) {
    scratch.clear();
    BuildRecord(p, d, size, scratch);
    info.SetRecord(p, arena.Append(scratch));
  }

  void BuildRecord(Pgid p, const uint8_t* d, size_t size, std::vector<uint8_t>& rec) {
    Node n;
    n.base = d;
    n.size = size;
    n.id = p;
    n.flags = LoadLE16(d + kPageFlagsOffset);
    n.count = LoadLE16(d + kPageCountOffset);
    if (std::optional<std::string> err = internal::ValidateNodeBytes(n)) {
      rec.push_back(kError);
      PutBytes(rec, AsBytes(*err));
      return;
    }
    const size_t table = kPageHeaderSize + size_t{16} * n.count;
    if (n.is_leaf()) {
      bool has_bucket = false;
      uint64_t image_end = table;
      for (size_t i = 0; i < n.count; i++) {
        if (n.leaf_flags(i) & kBucketLeafFlag) has_bucket = true;
        Bytes v = n.value(i);
        image_end = std::max<uint64_t>(image_end, static_cast<uint64_t>(v.data() + v.size() - d));
      }
      if (has_bucket) {
        rec.push_back(kImage);
        PutBytes(rec, Bytes{d, static_cast<size_t>(image_end)});
        return;
      }
      uint32_t kv_crc = 0;
      uint64_t kvlen = 0;
      if (n.contiguous) {
        kvlen = static_cast<uint64_t>(n.data_end - n.data_begin);
        kv_crc = Crc32cExtend(0, n.data_begin, static_cast<size_t>(kvlen));
      } else {
        for (size_t i = 0; i < n.count; i++) {
          kv_crc = Crc32cExtend(kv_crc, n.key(i));
          kv_crc = Crc32cExtend(kv_crc, n.value(i));
          kvlen += n.key(i).size() + n.value(i).size();
        }
      }
      uint32_t short_size = kNoShortKey;
      std::vector<uint32_t> bad;
      for (size_t i = 0; i < n.count; i++) {
        Bytes k = n.key(i);
        if (short_size == kNoShortKey && k.size() < 17) short_size = static_cast<uint32_t>(k.size());
        if (i > 0 && CompareBytes(k, n.key(i - 1)) <= 0) bad.push_back(static_cast<uint32_t>(i));
      }
      rec.push_back(kPlainLeaf);
      PutU32(rec, kv_crc);
      PutU64(rec, kvlen);
      PutU32(rec, short_size);
      PutU32(rec, static_cast<uint32_t>(bad.size()));
      for (uint32_t b : bad) PutU32(rec, b);
      if (n.count > 0) {
        PutBytes(rec, n.key(0));
        PutBytes(rec, n.key(n.count - 1));
      }
      return;
    }
    // Branch (or any non-leaf type, which a freed page may have): compact image with
    // the keys packed after the element table.
    uint64_t total = table;
    for (size_t i = 0; i < n.count; i++) total += n.key(i).size();
    rec.push_back(kImage);
    PutU32(rec, static_cast<uint32_t>(total));
    size_t base = rec.size();
    rec.resize(base + total);
    uint8_t* out = rec.data() + base;
    std::memcpy(out, d, kPageHeaderSize);
    size_t data = table;
    for (size_t i = 0; i < n.count; i++) {
      Bytes k = n.key(i);
      uint8_t* e = out + kPageHeaderSize + 16 * i;
      StoreLE32(e, static_cast<uint32_t>(data - (kPageHeaderSize + 16 * i)));
      StoreLE32(e + 4, static_cast<uint32_t>(k.size()));
      StoreLE64(e + 8, n.child(i));
      if (!k.empty()) std::memcpy(out + data, k.data(), k.size());
      data += k.size();
    }
  }

  void ParseFreelist(const uint8_t* d, size_t size) {
    fl_done = true;
    uint64_t count = LoadLE16(d + kPageCountOffset);
    size_t start = kPageHeaderSize;
    if (count == 0xFFFF) {
      count = LoadLE64(d + kPageHeaderSize);
      start += 8;
    }
    if (count > (size - start) / 8) {
      fl_error = PageMsg(meta.freelist, "freelist of " + std::to_string(count) +
                                            " ids does not fit in " +
                                            std::to_string(fl_overflow + 1) + " pages");
      return;
    }
    fl_ids.resize(count);
    for (uint64_t i = 0; i < count; i++) fl_ids[i] = LoadLE64(d + start + 8 * i);
  }

  // Logical page `start` (with overflow) is complete at `d`.
  void Complete(Pgid start, const uint8_t* d, size_t size) {
    if (info[start].record == kNoRecord && WantsNode(start)) Summarize(start, d, size);
    if (start == meta.freelist && fl_error.empty() && !fl_done) ParseFreelist(d, size);
  }

  bool WantsNode(Pgid p) {
    const PageInfo h = info[p];
    if (p < 2 || uint64_t{h.overflow} >= meta.pgid - p) return false;
    // Without a stored freelist no page is "freed", and Check never reads a page that is
    // not a branch or leaf.
    return meta.freelist != kPgidNoFreelist || (h.flags & (kBranchPageFlag | kLeafPageFlag));
  }

  void OnPage(const uint8_t* d) {
    Pgid p = pages++;
    if (p < 2) {
      metas.insert(metas.end(), d, d + kPageSize);
      info.Push({LoadLE64(d), LoadLE16(d + kPageFlagsOffset), LoadLE16(d + kPageCountOffset),
                 LoadLE32(d + kPageOverflowOffset), kNoRecord});
      if (p == 1) ChooseMeta();
      return;
    }
    if (p >= meta.pgid) return;
    const PageInfo h{LoadLE64(d), LoadLE16(d + kPageFlagsOffset), LoadLE16(d + kPageCountOffset),
                     LoadLE32(d + kPageOverflowOffset), kNoRecord};
    info.Push(h);
    bool want_node = WantsNode(p);
    bool want_fl = false;
    if (p == meta.freelist && fl_error.empty()) {
      if (!(h.flags & kFreelistPageFlag)) {
        fl_error = PageMsg(p, "invalid freelist page type: " + internal::PageTypeName(h.flags));
      } else if (uint64_t{h.overflow} >= meta.pgid - p) {
        fl_error = PageMsg(p, "freelist overflow of " + std::to_string(h.overflow) +
                                  " pages runs past the high-water mark");
      } else {
        want_fl = true;
        fl_overflow = h.overflow;
      }
    }
    if ((want_node || want_fl) && h.overflow == 0) {
      Complete(p, d, kPageSize);
      want_node = want_fl = false;
    }
    if (want_node || want_fl) {
      Pgid end = p + h.overflow + 1;
      open.emplace(p, end);
      open_by_end.emplace(end, p);
    }
    if (open.empty()) return;
    if (window.empty()) win_base = p;
    if (window.capacity() < kMaxWindowBytes + kPageSize) window.reserve(kMaxWindowBytes + kPageSize);
    window.insert(window.end(), d, d + kPageSize);
    // Logical pages that end with this page.
    while (!open_by_end.empty() && open_by_end.begin()->first == p + 1) {
      Pgid start = open_by_end.begin()->second;
      open_by_end.erase(open_by_end.begin());
      open.erase(start);
      Complete(start, window.data() + (start - win_base) * kPageSize,
               (p + 1 - start) * size_t{kPageSize});
    }
    // Give up on the oldest logical page while the window is too large.
    while (!open.empty() && (p + 1 - open.begin()->first) * kPageSize > kMaxWindowBytes) {
      Pgid start = open.begin()->first;
      Pgid end = open.begin()->second;
      open.erase(open.begin());
      for (auto it = open_by_end.lower_bound(end); it != open_by_end.end(); ++it) {
        if (it->second == start) {
          open_by_end.erase(it);
          break;
        }
      }
      if (info[start].record == kNoRecord && WantsNode(start)) {
        info.SetRecord(start, arena.Append(std::vector<uint8_t>{kTooLarge}));
      }
      if (start == meta.freelist && fl_error.empty() && !fl_done) {
        fl_error = PageMsg(start, "stored freelist is too large to check from a stream");
      }
    }
    Trim();
  }

  void Trim() {
    if (open.empty()) {
      window.clear();  // keeps the reserved capacity: no reallocation next time
      win_base = pages;
      return;
    }
    Pgid keep = open.begin()->first;
    size_t dead = static_cast<size_t>(keep - win_base) * kPageSize;
    // Erase the dead prefix when it is half the window, and always before the window
    // would outgrow its reserved capacity.
    if (dead > 0 && (dead >= window.size() / 2 || window.size() + kPageSize > window.capacity())) {
      window.erase(window.begin(), window.begin() + static_cast<ptrdiff_t>(dead));
      win_base = keep;
    }
  }

  void Write(const uint8_t* data, size_t n) {
    if (!fatal.empty()) throw Error(ErrorCode::kDataLoss, fatal);
    if (finished) throw Error(ErrorCode::kInternal, name + ": StreamInspector::Write after Finish");
    bytes += n;
    while (n > 0) {
      if (have_meta && pages >= meta.pgid) {  // trailer and slack: ignored
        pages += (page_fill + n) / kPageSize;
        page_fill = (page_fill + n) % kPageSize;
        return;
      }
      if (page_fill == 0 && n >= kPageSize) {
        OnPage(data);
        data += kPageSize;
        n -= kPageSize;
        continue;
      }
      size_t take = std::min(n, kPageSize - page_fill);
      std::memcpy(page_buf.data() + page_fill, data, take);
      page_fill += take;
      data += take;
      n -= take;
      if (page_fill == kPageSize) {
        page_fill = 0;
        OnPage(page_buf.data());
      }
    }
  }

  // ---- Finish side: Inspect's walk over the summaries ----

  CheckState cs;
  std::unique_ptr<PageSource> empty_source;
  std::optional<internal::Tree> tree;  // for InlineOrRoot only (never reads)
  uint32_t crc = 0;
  int64_t revision = 0;
  int64_t total_key = 0;
  size_t nesting = 0;
  std::string hash_error;

  [[noreturn]] void Corrupt(Pgid id, const std::string& msg) {
    throw Error(ErrorCode::kDataLoss, PageMsg(id, msg));
  }

  Item Load(Pgid id) {
    const PageInfo h = info[id];
    if (h.record == kNoRecord) {
      throw Error(ErrorCode::kInternal, PageMsg(id, "stream inspector kept no summary"));
    }
    SpillStore::View view = arena.At(h.record);
    const uint8_t* r = view.data;
    Item it;
    it.keep = view.keep;
    switch (r[0]) {
      case kError:
        Corrupt(id, std::string(AsString(Bytes{r + 5, LoadLE32(r + 1)})));
      case kTooLarge:
        throw Error(ErrorCode::kUnsupported,
                    PageMsg(id, "page with " + std::to_string(h.overflow) +
                                    " overflow pages is larger than the stream inspector's window"));
      case kImage: {
        Node& n = it.node;
        n.base = r + 5;
        n.size = LoadLE32(r + 1);
        n.id = id;
        n.flags = LoadLE16(n.base + kPageFlagsOffset);
        n.count = LoadLE16(n.base + kPageCountOffset);
        internal::ValidateNodeBytes(n);  // sets contiguous; cannot fail again
        return it;
      }
      default: {
        it.plain = true;
        Plain& l = it.leaf;
        l.id = id;
        l.count = h.count;
        l.crc = LoadLE32(r + 1);
        l.kvlen = LoadLE64(r + 5);
        l.short_size = LoadLE32(r + 13);
        l.n_bad = LoadLE32(r + 17);
        l.bad = r + 21;
        const uint8_t* k = l.bad + 4 * size_t{l.n_bad};
        if (l.count > 0) {
          l.first = Bytes{k + 4, LoadLE32(k)};
          k += 4 + l.first.size();
          l.last = Bytes{k + 4, LoadLE32(k)};
        }
        return it;
      }
    }
  }

  // Tree::Visit over the summaries.
  std::optional<Item> Visit(Pgid id) {
    const std::string sid = std::to_string(id);
    if (id >= meta.pgid) {
      cs.Problem("page " + sid + ": out of bounds: " + std::to_string(meta.pgid));
      return std::nullopt;
    }
    const PageInfo h = info[id];
    if (uint64_t{h.overflow} >= meta.pgid - id) {
      cs.Problem("page " + sid + ": out of bounds: " + std::to_string(meta.pgid) + " (overflow " +
                 std::to_string(h.overflow) + ")");
      return std::nullopt;
    }
    bool again = false;
    for (uint64_t k = 0; k <= h.overflow; k++) {
      bool was = cs.TestAndSetSeen(id + k);
      if (k == 0) again = was;
      if (was) cs.Problem("page " + std::to_string(id + k) + ": multiple references");
    }
    if (cs.IsFreed(id)) {
      cs.Problem("page " + sid + ": reachable freed");
    } else if (!(h.flags & (kBranchPageFlag | kLeafPageFlag))) {
      cs.Problem("page " + sid + ": invalid type: " + internal::PageTypeName(h.flags));
      return std::nullopt;
    }
    if (h.id != id) {
      cs.Problem("page " + sid + ": page id mismatch: header says " + std::to_string(h.id));
    }
    if (again) return std::nullopt;
    return Load(id);
  }

  void CheckOrder(const Item& it, const Bytes* lo, const Bytes* hi) {
    if (!it.plain) {
      internal::CheckOrder(it.node, lo, hi, cs);
      return;
    }
    const Plain& l = it.leaf;
    if (l.count == 0) return;
    if (lo != nullptr && CompareBytes(l.first, *lo) < 0) {
      cs.Problem(internal::KeyBelowParentProblem(l.id, true));
    }
    for (uint32_t j = 0; j < l.n_bad; j++) {
      cs.Problem(internal::KeyNotGreaterProblem(l.id, true, LoadLE32(l.bad + 4 * size_t{j})));
    }
    if (hi != nullptr && CompareBytes(l.last, *hi) >= 0) {
      cs.Problem(internal::KeyNotBelowNextProblem(l.id, true));
    }
  }

  // Tree::Walk over the summaries.
  template <class F>
  void Walk(std::optional<Node> inline_root, Pgid root, F&& on_leaf) {
    struct Frame {
      Item item;
      size_t next = 0;
      Bytes hi;
      bool has_hi = false;
    };
    std::vector<Frame> stack;
    stack.reserve(8);
    if (inline_root) {
      Item it;
      it.node = std::move(*inline_root);
      CheckOrder(it, nullptr, nullptr);
      stack.push_back({std::move(it), 0, Bytes{}, false});
    } else {
      std::optional<Item> it = Visit(root);
      if (!it) return;
      CheckOrder(*it, nullptr, nullptr);
      stack.push_back({std::move(*it), 0, Bytes{}, false});
    }
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.item.is_leaf()) {
        on_leaf(static_cast<const Item&>(f.item));
        stack.pop_back();
        continue;
      }
      const Node& b = f.item.node;
      if (f.next >= b.count) {
        stack.pop_back();
        continue;
      }
      size_t i = f.next++;
      Bytes lo = b.key(i);
      Bytes hi = f.hi;
      bool has_hi = f.has_hi;
      if (i + 1 < b.count) {
        hi = b.key(i + 1);
        has_hi = true;
      }
      Pgid child = b.child(i);
      Pgid parent = b.id;
      if (stack.size() >= internal::kMaxTreeDepth) {
        throw Error(ErrorCode::kDataLoss, name + ": page " + std::to_string(parent) +
                                              ": tree deeper than " +
                                              std::to_string(internal::kMaxTreeDepth) + " levels");
      }
      std::optional<Item> c = Visit(child);
      if (!c) continue;
      CheckOrder(*c, &lo, has_hi ? &hi : nullptr);
      stack.push_back({std::move(*c), 0, hi, has_hi});
    }
  }

  void SetHashError(std::string msg) {
    if (hash_error.empty()) hash_error = std::move(msg);
  }

  template <class F>
  void WalkBucket(const Node& holder, size_t i, size_t depth, F&& on_leaf) {
    if (depth > kMaxBucketNesting) Corrupt(holder.id, "buckets nested too deeply");
    Pgid root = 0;
    std::optional<Node> inline_root = tree->InlineOrRoot(holder, i, &root);
    nesting = depth;
    Walk(std::move(inline_root), root, on_leaf);
  }

  void RootLeaf(const Item& it) {
    if (it.plain) {
      if (it.leaf.count > 0) SetHashError("cannot get hash of bucket " + std::string(AsString(it.leaf.first)));
      return;
    }
    const Node& leaf = it.node;
    for (size_t i = 0; i < leaf.count; i++) {
      Bytes bname = leaf.key(i);
      if (!(leaf.leaf_flags(i) & kBucketLeafFlag)) {
        SetHashError("cannot get hash of bucket " + std::string(AsString(bname)));
        continue;
      }
      crc = Crc32cExtend(crc, bname);
      bool is_key = AsString(bname) == "key";
      WalkBucket(leaf, i, 1, [&](const Item& n) { BucketLeaf(n, is_key); });
    }
  }

  void BucketLeaf(const Item& it, bool is_key) {
    if (it.count() == 0) return;
    total_key += it.count();
    if (it.plain) {
      const Plain& l = it.leaf;
      if (is_key) {
        if (l.short_size != kNoShortKey) {
          SetHashError(internal::ShortRevisionKeyError(l.short_size, l.id));
        }
        if (l.last.size() >= 8) revision = static_cast<int64_t>(LoadBE64(l.last.data()));
      }
      crc = Crc32cCombine(crc, l.crc, l.kvlen);
      return;
    }
    const Node& n = it.node;
    if (is_key) {
      internal::KeyLeafFacts f = internal::KeyBucketLeafFacts(n);
      if (!f.hash_error.empty()) SetHashError(std::move(f.hash_error));
      if (f.revision) revision = *f.revision;
    }
    if (n.contiguous) {
      crc = Crc32cExtend(crc, n.data_begin, static_cast<size_t>(n.data_end - n.data_begin));
      return;
    }
    size_t depth = nesting;
    for (size_t i = 0; i < n.count; i++) {
      crc = Crc32cExtend(crc, n.key(i));
      if (n.leaf_flags(i) & kBucketLeafFlag) {
        WalkBucket(n, i, depth + 1, [&](const Item& c) { NestedLeaf(c); });
        nesting = depth;
      } else {
        crc = Crc32cExtend(crc, n.value(i));
      }
    }
  }

  void NestedLeaf(const Item& it) {
    if (it.plain) return;  // no bucket elements
    const Node& n = it.node;
    size_t depth = nesting;
    for (size_t i = 0; i < n.count; i++) {
      if (n.leaf_flags(i) & kBucketLeafFlag) {
        WalkBucket(n, i, depth + 1, [&](const Item& c) { NestedLeaf(c); });
        nesting = depth;
      }
    }
  }

  void FindUnreachable() {
    for (size_t w = 0; w < cs.seen.size(); w++) {
      uint64_t missing = ~cs.seen[w] & ~cs.freed[w];
      if (w == cs.seen.size() - 1 && meta.pgid % 64 != 0) {
        missing &= (uint64_t{1} << (meta.pgid % 64)) - 1;
      }
      while (missing != 0) {
        int b = __builtin_ctzll(missing);
        missing &= missing - 1;
        cs.Problem("page " + std::to_string(w * 64 + static_cast<uint64_t>(b)) +
                   ": unreachable unfreed");
      }
    }
  }

  InspectResult Finish() {
    if (!fatal.empty()) throw Error(ErrorCode::kDataLoss, fatal);
    if (finished) throw Error(ErrorCode::kInternal, name + ": StreamInspector::Finish called twice");
    finished = true;
    if (bytes < kPageSize) Fail(name + ": invalid database");
    if (bytes < 2 * kPageSize) Fail(name + ": file size too small");
    if (pages < meta.pgid) {
      Fail(name + ": snapshot stream truncated: got " + std::to_string(bytes) +
           " bytes, meta says " +
           (meta.pgid > (~uint64_t{0}) / kPageSize ? std::string("overflow")
                                                   : std::to_string(meta.pgid * kPageSize)));
    }
    window.clear();
    window.shrink_to_fit();
    cs.name = name;
    cs.strict = false;
    cs.check_order = true;
    cs.seen.assign((meta.pgid + 63) / 64, 0);
    CheckState::Set(cs.seen, 0);
    CheckState::Set(cs.seen, 1);
    if (meta.freelist != kPgidNoFreelist) {
      if (!fl_error.empty()) throw Error(ErrorCode::kDataLoss, fl_error);
      std::sort(fl_ids.begin(), fl_ids.end());
      cs.freed.assign((meta.pgid + 63) / 64, 0);
      for (size_t i = 0; i < fl_ids.size(); i++) {
        if (i > 0 && fl_ids[i] == fl_ids[i - 1]) {
          cs.Problem("page " + std::to_string(fl_ids[i]) + ": already freed");
        }
        if (fl_ids[i] < meta.pgid) CheckState::Set(cs.freed, fl_ids[i]);
      }
      for (uint64_t k = 0; k <= fl_overflow; k++) CheckState::Set(cs.seen, meta.freelist + k);
      fl_ids.clear();
      fl_ids.shrink_to_fit();
    }
    empty_source = PageSource::FromMemory(Bytes{}, name);
    tree.emplace(*empty_source, meta);
    Walk(std::nullopt, meta.root, [&](const Item& leaf) { RootLeaf(leaf); });
    if (meta.freelist != kPgidNoFreelist) FindUnreachable();

    InspectResult out;
    out.meta = meta;
    out.status.hash = crc;
    out.status.revision = revision;
    out.status.total_key = total_key;
    out.status.total_size = static_cast<int64_t>(meta.pgid * kPageSize);
    out.problems = std::move(cs.problems);
    out.problem_count = cs.problem_count;
    if (out.problem_count == 0 && !hash_error.empty()) {
      throw Error(ErrorCode::kDataLoss, name + ": " + hash_error);
    }
    return out;
  }
};

StreamInspector::StreamInspector(std::string name, Limits limits)
    : impl_(std::make_unique<Impl>(std::move(name), limits)) {}
StreamInspector::~StreamInspector() = default;

void StreamInspector::Write(const uint8_t* data, size_t n) { impl_->Write(data, n); }
InspectResult StreamInspector::Finish() { return impl_->Finish(); }
uint64_t StreamInspector::bytes() const { return impl_->bytes; }

std::string StreamInspector::spill_error() const {
  const Impl& m = *impl_;
  return !m.arena.spill_error().empty() ? m.arena.spill_error() : m.info.spill_error();
}

size_t StreamInspector::memory_bytes() const {
  const Impl& m = *impl_;
  return m.info.memory_bytes() + m.arena.memory_bytes() + m.window.capacity() +
         m.fl_ids.capacity() * sizeof(Pgid) + m.page_buf.capacity() + m.metas.capacity() +
         m.open.size() * 64 + m.open_by_end.size() * 64;
}

}  // namespace etcdsafe::bolt
