#include "bolt/inspect.h"

#include <algorithm>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/tree.h"

namespace etcdsafe::bolt {

using internal::CheckState;
using internal::Node;
using internal::Tree;

namespace {

constexpr size_t kMaxBucketNesting = 16;

class Inspector {
 public:
  Inspector(Reader& r) : r_(r), meta_(r.meta()), tree_(r.source(), meta_) {
    cs_.name = r.name();
    cs_.strict = false;
    cs_.check_order = true;
    cs_.seen.assign((meta_.pgid + 63) / 64, 0);
  }

  InspectResult Run() {
    CheckState::Set(cs_.seen, 0);
    CheckState::Set(cs_.seen, 1);
    if (meta_.freelist != kPgidNoFreelist) LoadFreelist();
    tree_.Walk(std::nullopt, meta_.root, cs_, [&](const Node& leaf) { RootLeaf(leaf); });
    if (meta_.freelist != kPgidNoFreelist) FindUnreachable();

    InspectResult out;
    out.meta = meta_;
    out.status.hash = crc_;
    out.status.revision = revision_;
    out.status.total_key = total_key_;
    out.status.total_size = static_cast<int64_t>(meta_.pgid * kPageSize);
    out.problems = std::move(cs_.problems);
    out.problem_count = cs_.problem_count;
    if (out.problem_count == 0 && !hash_error_.empty()) {
      throw Error(ErrorCode::kDataLoss, r_.name() + ": " + hash_error_);
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

  void SetHashError(std::string msg) {
    if (hash_error_.empty()) hash_error_ = std::move(msg);
  }

  void RootLeaf(const Node& leaf) {
    for (size_t i = 0; i < leaf.count; i++) {
      Bytes name = leaf.key(i);
      if (!(leaf.leaf_flags(i) & kBucketLeafFlag)) {
        SetHashError("cannot get hash of bucket " + std::string(AsString(name)));
        continue;
      }
      crc_ = Crc32cExtend(crc_, name);
      bool is_key = AsString(name) == "key";
      WalkBucket(leaf, i, 1, [&](const Node& n) { BucketLeaf(n, is_key); });
    }
  }

  template <class F>
  void WalkBucket(const Node& holder, size_t i, size_t nesting, F&& on_leaf) {
    if (nesting > kMaxBucketNesting) Corrupt(holder.id, "buckets nested too deeply");
    Pgid root = 0;
    std::optional<Node> inline_root = tree_.InlineOrRoot(holder, i, &root);
    nesting_ = nesting;
    tree_.Walk(std::move(inline_root), root, cs_, on_leaf);
  }

  // A leaf of a top-level bucket: feeds the hash.
  void BucketLeaf(const Node& n, bool is_key) {
    if (n.count == 0) return;
    total_key_ += n.count;
    if (is_key) {
      for (size_t i = 0; i < n.count; i++) {
        if (n.key(i).size() < 17) {
          SetHashError("bucket key: key of " + std::to_string(n.key(i).size()) +
                       " bytes is not a revision (page " + std::to_string(n.id) + ")");
        }
      }
      Bytes last = n.key(n.count - 1);
      if (last.size() >= 8) revision_ = static_cast<int64_t>(LoadBE64(last.data()));
    }
    if (n.contiguous) {
      crc_ = Crc32cExtend(crc_, n.data_begin, static_cast<size_t>(n.data_end - n.data_begin));
      return;
    }
    size_t nesting = nesting_;
    for (size_t i = 0; i < n.count; i++) {
      crc_ = Crc32cExtend(crc_, n.key(i));
      if (n.leaf_flags(i) & kBucketLeafFlag) {
        // etcdctl hashes a nested bucket as its key with an empty value; Check still
        // walks its pages.
        WalkBucket(n, i, nesting + 1, [&](const Node& c) { NestedLeaf(c); });
        nesting_ = nesting;
      } else {
        crc_ = Crc32cExtend(crc_, n.value(i));
      }
    }
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

  Reader& r_;
  Meta meta_;
  Tree tree_;
  CheckState cs_;
  uint32_t crc_ = 0;
  int64_t revision_ = 0;
  int64_t total_key_ = 0;
  size_t nesting_ = 0;
  std::string hash_error_;
};

}  // namespace

InspectResult Inspect(Reader& reader) { return Inspector(reader).Run(); }

InspectResult Inspect(const std::string& path) {
  Reader r = Reader::Open(path);
  return Inspect(r);
}

}  // namespace etcdsafe::bolt
