#include "bolt/builder.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/tree.h"

namespace etcdsafe::bolt {

namespace {

[[noreturn]] void Invalid(const std::string& msg) {
  throw Error(ErrorCode::kInvalidArgument, "bolt builder: " + msg);
}

// Sequential page writer with a 1 MiB buffer; big runs bypass the buffer.
class PageWriter {
 public:
  static constexpr size_t kBufferSize = size_t{1} << 20;

  explicit PageWriter(File* file) : file_(file) { buf_.reserve(kBufferSize); }

  uint64_t offset() const { return flushed_ + buf_.size(); }

  void Append(const uint8_t* p, size_t n) {
    if (buf_.size() + n > kBufferSize) {
      Flush();
      if (n >= kBufferSize) {
        file_->WriteAt(flushed_, p, n);
        flushed_ += n;
        return;
      }
    }
    buf_.insert(buf_.end(), p, p + n);
  }
  void Zeros(size_t n) {
    static const uint8_t kZero[4096] = {};
    while (n > 0) {
      size_t k = std::min(n, sizeof kZero);
      Append(kZero, k);
      n -= k;
    }
  }
  void Flush() {
    if (buf_.empty()) return;
    file_->WriteAt(flushed_, buf_.data(), buf_.size());
    flushed_ += buf_.size();
    buf_.clear();
  }

 private:
  File* file_;
  std::vector<uint8_t> buf_;
  uint64_t flushed_ = 0;
};

struct Elem {
  uint32_t flags = 0;
  uint32_t koff = 0;  // into Level::data
  uint32_t ksize = 0;
  uint32_t vsize = 0;  // leaf: value follows the key in data
  Pgid child = 0;      // branch
};

// The in-progress page of one tree level.
struct Level {
  bool leaf = true;
  std::vector<Elem> elems;
  std::string data;
  uint64_t bytes = kPageHeaderSize;  // serialized size so far
  uint64_t pages_flushed = 0;

  void Clear() {
    elems.clear();
    data.clear();
    bytes = kPageHeaderSize;
  }
  Bytes key(size_t i) const {
    return {reinterpret_cast<const uint8_t*>(data.data()) + elems[i].koff, elems[i].ksize};
  }
};

}  // namespace

struct Builder::Impl {
  File file;
  BuilderOptions opts;
  std::optional<PageWriter> out;
  Pgid next_pgid = 2;
  std::vector<Level> levels;
  bool in_bucket = false;
  bool finished = false;
  bool failed = false;
  std::string bucket_name;
  std::string last_bucket;
  bool have_last_bucket = false;
  std::string last_key;
  bool have_last_key = false;
  std::vector<std::pair<std::string, std::string>> root_entries;  // name, bucket value
  std::vector<uint8_t> scratch;

  Impl(File f, BuilderOptions o) : file(std::move(f)), opts(o) {
    if (opts.txid < 2) Invalid("txid must be >= 2");
    out.emplace(&file);
    out->Zeros(2 * kPageSize);  // metas are written last, in place
  }

  // Serializes `lv` (header with page id `id`) into scratch; returns page count.
  uint32_t Serialize(const Level& lv, Pgid id) {
    uint64_t total = lv.bytes;
    scratch.assign(total, 0);
    uint8_t* p = scratch.data();
    uint64_t pages = (total + kPageSize - 1) / kPageSize;
    StoreLE64(p + kPageIdOffset, id);
    StoreLE16(p + kPageFlagsOffset, lv.leaf ? kLeafPageFlag : kBranchPageFlag);
    StoreLE16(p + kPageCountOffset, static_cast<uint16_t>(lv.elems.size()));
    StoreLE32(p + kPageOverflowOffset, static_cast<uint32_t>(pages == 0 ? 0 : pages - 1));
    uint64_t data_start = kPageHeaderSize + 16 * lv.elems.size();
    for (size_t i = 0; i < lv.elems.size(); i++) {
      const Elem& e = lv.elems[i];
      uint8_t* ep = p + kPageHeaderSize + 16 * i;
      uint32_t pos = static_cast<uint32_t>(data_start + e.koff - (kPageHeaderSize + 16 * i));
      if (lv.leaf) {
        StoreLE32(ep, e.flags);
        StoreLE32(ep + 4, pos);
        StoreLE32(ep + 8, e.ksize);
        StoreLE32(ep + 12, e.vsize);
      } else {
        StoreLE32(ep, pos);
        StoreLE32(ep + 4, e.ksize);
        StoreLE64(ep + 8, e.child);
      }
    }
    if (!lv.data.empty()) std::memcpy(p + data_start, lv.data.data(), lv.data.size());
    return static_cast<uint32_t>(pages);
  }

  // Writes scratch as the page run starting at next_pgid; returns its id.
  Pgid WriteScratch(uint32_t pages) {
    Pgid id = next_pgid;
    out->Append(scratch.data(), scratch.size());
    out->Zeros(uint64_t{pages} * kPageSize - scratch.size());
    next_pgid += pages;
    return id;
  }

  Level& LevelAt(size_t i) {
    while (levels.size() <= i) {
      levels.emplace_back();
      levels.back().leaf = levels.size() == 1;
    }
    return levels[i];
  }

  // Appends an element to level i, flushing the level's page first if it is full.
  void Add(size_t i, uint32_t flags, Bytes key, Bytes value, Pgid child) {
    Level* lv = &LevelAt(i);
    uint64_t need = 16 + key.size() + value.size();
    // A branch page keeps at least two children even if huge keys overflow it;
    // otherwise a level of one-child pages would never shrink towards a root.
    size_t min_elems = lv->leaf ? 1 : 2;
    if (lv->elems.size() >= min_elems &&
        (lv->bytes + need > kPageSize || lv->elems.size() >= kMaxElementsPerPage)) {
      FlushLevel(i);
      lv = &levels[i];
    }
    Elem e;
    e.flags = flags;
    e.koff = static_cast<uint32_t>(lv->data.size());
    e.ksize = static_cast<uint32_t>(key.size());
    e.vsize = static_cast<uint32_t>(value.size());
    e.child = child;
    lv->data.append(reinterpret_cast<const char*>(key.data()), key.size());
    lv->data.append(reinterpret_cast<const char*>(value.data()), value.size());
    lv->elems.push_back(e);
    lv->bytes += need;
  }

  // Writes level i's page and registers it (by its first key) in level i+1.
  void FlushLevel(size_t i) {
    uint32_t pages = Serialize(levels[i], next_pgid);
    Pgid id = WriteScratch(pages);
    levels[i].pages_flushed++;
    // Copy the first key: Add may reallocate `levels`.
    std::string first(AsString(levels[i].key(0)));
    levels[i].Clear();
    Add(i + 1, 0, AsBytes(first), {}, id);
  }

  // Writes a single element too big to share a page straight from the caller's buffer.
  void WriteBigLeaf(uint32_t flags, Bytes key, Bytes value) {
    if (!LevelAt(0).elems.empty()) FlushLevel(0);
    uint64_t total = kPageHeaderSize + 16 + key.size() + value.size();
    uint64_t pages = (total + kPageSize - 1) / kPageSize;
    uint8_t head[32] = {};
    StoreLE64(head + kPageIdOffset, next_pgid);
    StoreLE16(head + kPageFlagsOffset, kLeafPageFlag);
    StoreLE16(head + kPageCountOffset, 1);
    StoreLE32(head + kPageOverflowOffset, static_cast<uint32_t>(pages - 1));
    StoreLE32(head + 16, flags);
    StoreLE32(head + 20, 16);
    StoreLE32(head + 24, static_cast<uint32_t>(key.size()));
    StoreLE32(head + 28, static_cast<uint32_t>(value.size()));
    Pgid id = next_pgid;
    out->Append(head, sizeof head);
    out->Append(key.data(), key.size());
    out->Append(value.data(), value.size());
    out->Zeros(pages * kPageSize - total);
    next_pgid += pages;
    levels[0].pages_flushed++;
    std::string k(AsString(key));
    Add(1, 0, AsBytes(k), {}, id);
  }

  void AddLeaf(uint32_t flags, Bytes key, Bytes value) {
    if (kPageHeaderSize + 16 + key.size() + value.size() > kPageSize) {
      WriteBigLeaf(flags, key, value);
    } else {
      Add(0, flags, key, value, 0);
    }
  }

  // Completes the current tree. Returns the bucket value: a 16-byte header with the
  // root page id, or (inline) a zero header followed by the leaf page image.
  std::string FinishTree(bool allow_inline) {
    LevelAt(0);
    std::string header(kBucketHeaderSize, '\0');
    if (allow_inline && levels.size() == 1 && levels[0].pages_flushed == 0 &&
        levels[0].bytes <= kInlineBucketMaxSize) {
      Serialize(levels[0], 0);
      header.append(reinterpret_cast<const char*>(scratch.data()), scratch.size());
      StoreLE32(reinterpret_cast<uint8_t*>(header.data()) + kBucketHeaderSize + kPageOverflowOffset, 0);
      levels.clear();
      return header;
    }
    Pgid root = 0;
    for (size_t i = 0;; i++) {
      if (i >= levels.size() || i > 100) {
        throw Error(ErrorCode::kInternal, "bolt builder: tree levels did not converge");
      }
      Level& lv = levels[i];
      bool top = i + 1 == levels.size();
      if (top && lv.pages_flushed == 0) {
        if (!lv.leaf && lv.elems.size() == 1) {
          root = lv.elems[0].child;  // a branch over one child is pointless
        } else {
          root = WriteScratch(Serialize(lv, next_pgid));
        }
        break;
      }
      if (!lv.elems.empty()) FlushLevel(i);
    }
    levels.clear();
    StoreLE64(reinterpret_cast<uint8_t*>(header.data()), root);
    return header;
  }

  void WriteMeta(uint8_t* page, Pgid root, uint64_t txid, Pgid id) {
    std::memset(page, 0, kPageSize);
    StoreLE64(page + kPageIdOffset, id);
    StoreLE16(page + kPageFlagsOffset, kMetaPageFlag);
    StoreLE32(page + kMetaMagicOffset, kMagic);
    StoreLE32(page + kMetaVersionOffset, kVersion);
    StoreLE32(page + kMetaPageSizeOffset, kPageSize);
    StoreLE32(page + kMetaFlagsOffset, 0);
    StoreLE64(page + kMetaRootOffset, root);
    StoreLE64(page + kMetaSequenceOffset, 0);
    StoreLE64(page + kMetaFreelistOffset, kPgidNoFreelist);
    StoreLE64(page + kMetaPgidOffset, next_pgid);
    StoreLE64(page + kMetaTxidOffset, txid);
    StoreLE64(page + kMetaChecksumOffset,
              Fnv1a64(Bytes{page + kMetaMagicOffset, kMetaChecksumOffset - kMetaMagicOffset}));
  }

  void Check(bool ok, const char* what) {
    if (!ok) {
      failed = true;
      Invalid(what);
    }
  }
};

Builder::Builder(const std::string& path, BuilderOptions options)
    : Builder(File::Create(path, 0600, /*truncate=*/true), options) {}

Builder::Builder(File file, BuilderOptions options)
    : impl_(std::make_unique<Impl>(std::move(file), options)) {}

Builder::~Builder() = default;

void Builder::BeginBucket(std::string_view name) {
  Impl& m = *impl_;
  m.Check(!m.failed && !m.finished, "builder already finished or failed");
  m.Check(!m.in_bucket, "BeginBucket inside a bucket");
  m.Check(!name.empty(), "empty bucket name");
  m.Check(name.size() <= kMaxKeySize, "bucket name too long");
  if (m.have_last_bucket && internal::CompareBytes(AsBytes(name), AsBytes(m.last_bucket)) <= 0) {
    m.failed = true;
    Invalid("bucket " + std::string(name) + " is not after bucket " + m.last_bucket);
  }
  m.last_bucket.assign(name);
  m.have_last_bucket = true;
  m.bucket_name.assign(name);
  m.in_bucket = true;
  m.have_last_key = false;
}

void Builder::Put(Bytes key, Bytes value) {
  Impl& m = *impl_;
  m.Check(!m.failed && m.in_bucket, "Put outside a bucket");
  m.Check(!key.empty(), "empty key");
  m.Check(key.size() <= kMaxKeySize, "key too long");
  m.Check(value.size() <= kMaxValueSize, "value too long");
  if (m.have_last_key && internal::CompareBytes(key, AsBytes(m.last_key)) <= 0) {
    m.failed = true;
    Invalid("bucket " + m.bucket_name + ": key " + HexBytes(key) + " is not after key " +
            HexBytes(AsBytes(m.last_key)));
  }
  m.last_key.assign(AsString(key));
  m.have_last_key = true;
  m.AddLeaf(0, key, value);
}

void Builder::EndBucket() {
  Impl& m = *impl_;
  m.Check(!m.failed && m.in_bucket, "EndBucket outside a bucket");
  m.root_entries.emplace_back(m.bucket_name, m.FinishTree(m.opts.inline_small_buckets));
  m.in_bucket = false;
}

Meta Builder::Finish() {
  Impl& m = *impl_;
  m.Check(!m.failed && !m.finished && !m.in_bucket, "Finish inside a bucket or twice");
  for (auto& [name, value] : m.root_entries) {
    m.AddLeaf(kBucketLeafFlag, AsBytes(name), AsBytes(value));
  }
  std::string root_value = m.FinishTree(/*allow_inline=*/false);
  Pgid root = LoadLE64(reinterpret_cast<const uint8_t*>(root_value.data()));
  m.out->Flush();
  uint8_t metas[2 * kPageSize];
  m.WriteMeta(metas, root, m.opts.txid, 0);
  m.WriteMeta(metas + kPageSize, root, m.opts.txid - 1, 1);
  m.file.WriteAt(0, metas, sizeof metas);
  m.file.Sync();
  m.finished = true;
  Meta meta;
  ValidateMeta(Bytes{metas, kPageSize}, &meta);
  return meta;
}

File Builder::TakeFile() { return std::move(impl_->file); }

Meta Rewrite(const std::string& src, const std::string& dst, std::vector<Mutation> mutations,
             BuilderOptions options) {
  std::stable_sort(mutations.begin(), mutations.end(), [](const Mutation& a, const Mutation& b) {
    if (a.bucket != b.bucket) return a.bucket < b.bucket;
    // kCreateBucket sorts first within its bucket.
    bool ac = a.kind == Mutation::Kind::kCreateBucket, bc = b.kind == Mutation::Kind::kCreateBucket;
    if (ac != bc) return ac;
    return internal::CompareBytes(AsBytes(a.key), AsBytes(b.key)) < 0;
  });
  for (size_t i = 0; i < mutations.size(); i++) {
    const Mutation& mu = mutations[i];
    if (mu.bucket.empty()) Invalid("mutation with an empty bucket name");
    if (mu.kind != Mutation::Kind::kCreateBucket) {
      if (mu.key.empty()) Invalid("mutation with an empty key in bucket " + mu.bucket);
      if (i > 0 && mutations[i - 1].kind != Mutation::Kind::kCreateBucket &&
          mutations[i - 1].bucket == mu.bucket && mutations[i - 1].key == mu.key) {
        Invalid("two mutations of bucket " + mu.bucket + " key " + HexBytes(AsBytes(mu.key)));
      }
    }
  }

  Reader reader = Reader::Open(src);
  std::vector<std::string> buckets;
  reader.ForEachBucket([&](std::string_view name) { buckets.emplace_back(name); });
  // Buckets that a mutation creates (kPut or kCreateBucket).
  for (const Mutation& mu : mutations) {
    if (mu.kind != Mutation::Kind::kDelete) buckets.push_back(mu.bucket);
  }
  std::sort(buckets.begin(), buckets.end());  // std::string compares bytewise (char_traits)
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());

  Builder b(dst, options);
  size_t mi = 0;
  for (const std::string& name : buckets) {
    while (mi < mutations.size() && mutations[mi].bucket < name) mi++;
    while (mi < mutations.size() && mutations[mi].bucket == name &&
           mutations[mi].kind == Mutation::Kind::kCreateBucket) {
      mi++;
    }
    b.BeginBucket(name);
    auto apply = [&](const Mutation& mu) {
      if (mu.kind == Mutation::Kind::kPut) b.Put(mu.key, mu.value);
    };
    if (reader.HasBucket(name)) {
      reader.ForEachEntry(name, [&](Bytes k, Bytes v, bool is_bucket) {
        if (is_bucket) {
          throw Error(ErrorCode::kUnsupported, src + ": bucket " + name +
                                                   " has a nested bucket; etcd dbs have none");
        }
        while (mi < mutations.size() && mutations[mi].bucket == name &&
               internal::CompareBytes(AsBytes(mutations[mi].key), k) < 0) {
          apply(mutations[mi++]);
        }
        if (mi < mutations.size() && mutations[mi].bucket == name &&
            internal::CompareBytes(AsBytes(mutations[mi].key), k) == 0) {
          apply(mutations[mi++]);  // replaced or deleted
          return;
        }
        b.Put(k, v);
      });
    }
    while (mi < mutations.size() && mutations[mi].bucket == name) apply(mutations[mi++]);
    b.EndBucket();
  }
  return b.Finish();
}

}  // namespace etcdsafe::bolt
