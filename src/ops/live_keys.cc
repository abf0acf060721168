#include "ops/live_keys.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::ops {

namespace {

constexpr char kKeyBucket[] = "key";

// Records: varint key_len, key, varint summary_len, summary, varint main, varint sub,
// byte flags (1 = tombstone), varint create, mod, version, lease, value_size. Process
// private (runs never outlive the process).
void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(char(v | 0x80));
    v >>= 7;
  }
  out->push_back(char(v));
}

uint64_t GetVarint(const uint8_t** p) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t b = *(*p)++;
    v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

struct Rec {
  std::string_view key, summary;
  int64_t main = 0, sub = 0;
  bool tombstone = false;
  int64_t create = 0, mod = 0, version = 0, lease = 0, value_size = 0;
};

// Decodes the record at p; returns its end.
const uint8_t* Decode(const uint8_t* p, Rec* r) {
  const uint64_t klen = GetVarint(&p);
  r->key = std::string_view(reinterpret_cast<const char*>(p), klen);
  p += klen;
  const uint64_t slen = GetVarint(&p);
  r->summary = std::string_view(reinterpret_cast<const char*>(p), slen);
  p += slen;
  r->main = int64_t(GetVarint(&p));
  r->sub = int64_t(GetVarint(&p));
  r->tombstone = (*p++ & 1) != 0;
  r->create = int64_t(GetVarint(&p));
  r->mod = int64_t(GetVarint(&p));
  r->version = int64_t(GetVarint(&p));
  r->lease = int64_t(GetVarint(&p));
  r->value_size = int64_t(GetVarint(&p));
  return p;
}

std::string_view KeyAt(const uint8_t* p) {
  const uint64_t klen = GetVarint(&p);
  return {reinterpret_cast<const char*>(p), klen};
}

// Key ascending, then revision descending (the newest first).
bool Before(const Rec& a, const Rec& b) {
  if (int c = a.key.compare(b.key); c != 0) return c < 0;
  if (a.main != b.main) return a.main > b.main;
  return a.sub > b.sub;
}

void Encode(std::string* out, std::string_view key, std::string_view summary, const RevisionKey& r,
            const KeyValueView& kv) {
  PutVarint(out, key.size());
  out->append(key);
  PutVarint(out, summary.size());
  out->append(summary);
  PutVarint(out, uint64_t(r.main));
  PutVarint(out, uint64_t(r.sub));
  out->push_back(r.tombstone ? 1 : 0);
  PutVarint(out, uint64_t(kv.create_revision));
  PutVarint(out, uint64_t(kv.mod_revision));
  PutVarint(out, uint64_t(kv.version));
  PutVarint(out, uint64_t(kv.lease));
  PutVarint(out, kv.value.size());
}

std::string EntryName(const std::string& file, const RevisionKey& r) {
  return file + ": bucket key: revision " + std::to_string(r.main) + "_" + std::to_string(r.sub);
}

// One summarizing thread's records: back to back, and where each starts.
struct Buffer {
  std::string arena;
  std::vector<uint32_t> offsets;
  size_t used() const { return arena.size() + offsets.size() * sizeof(uint32_t); }
  void Add(const RevisionKey& r, const KeyValueView& v, std::string_view summary) {
    offsets.push_back(uint32_t(arena.size()));
    Encode(&arena, AsString(v.key), summary, r, v);
  }
  // Sorts the offsets by (key, revision descending) and returns the newest per key
  // (decoded on the fly: a decoded copy of every record would double the memory).
  std::vector<uint32_t> SortedNewest() {
    const uint8_t* base = reinterpret_cast<const uint8_t*>(arena.data());
    auto rev = [base](uint32_t off, int64_t* main, int64_t* sub) {
      const uint8_t* p = base + off;
      p += GetVarint(&p);  // key
      p += GetVarint(&p);  // summary
      *main = int64_t(GetVarint(&p));
      *sub = int64_t(GetVarint(&p));
    };
    std::sort(offsets.begin(), offsets.end(), [&](uint32_t a, uint32_t b) {
      const std::string_view ka = KeyAt(base + a), kb = KeyAt(base + b);
      if (int c = ka.compare(kb); c != 0) return c < 0;
      int64_t ma, sa, mb, sb;
      rev(a, &ma, &sa);
      rev(b, &mb, &sb);
      return ma != mb ? ma > mb : sa > sb;
    });
    std::vector<uint32_t> out;
    out.reserve(offsets.size());
    std::string_view prev;
    for (size_t i = 0; i < offsets.size(); i++) {
      const std::string_view k = KeyAt(base + offsets[i]);
      if (i > 0 && k == prev) continue;
      out.push_back(offsets[i]);
      prev = k;
    }
    return out;
  }
};

}  // namespace

struct LiveKeys::Impl {
  SnapshotKv& kv;
  LiveKeysOptions opts;
  Summarizer summarizer;
  LiveKeysStats stats;
  std::string spill_error;
  size_t threads = 1;
  size_t buffer_bytes = 0;  // per summarizing thread

  // Sorted runs: in the temp file [offset, offset + size), serialized in memory (no temp
  // file), or a whole buffer left in memory (nothing was spilled) with its newest order.
  struct Run {
    uint64_t offset = 0, size = 0;
    std::string memory;
    bool in_memory = false;
    std::unique_ptr<Buffer> buffer;
    std::vector<uint32_t> order;
  };
  std::mutex mu;  // runs, file, stats.runs / spilled_bytes, spill_error during Scan()
  std::vector<Run> runs;
  File file;
  uint64_t file_size = 0;

  // Merge state.
  struct Cursor {
    const Run* run = nullptr;
    uint64_t pos = 0;  // next byte of the run, or next index of run->order
    std::string buf;   // file runs: bytes [buf_start, buf_start + buf.size()) of the run
    uint64_t buf_start = 0;
    Rec rec;
    bool valid = false;
  };
  std::vector<Cursor> cursors;
  std::vector<size_t> heap;
  size_t read_chunk = 0;
  bool scanned = false;
  std::string out_key, out_summary;

  Impl(SnapshotKv& k, LiveKeysOptions o, Summarizer s) : kv(k), opts(std::move(o)), summarizer(std::move(s)) {
    opts.memory_bytes = std::clamp<size_t>(opts.memory_bytes, size_t{64} << 10, size_t{1} << 31);
    threads = std::clamp<size_t>(opts.threads, 1, 8);
    buffer_bytes = std::max<size_t>(opts.memory_bytes / threads, size_t{32} << 10);
  }

  void OpenFile() { file = OpenUnnamedTemp(opts.temp_dir, "inspect sort file"); }

  // Writes a buffer out as a sorted run (newest record per key) and empties it.
  void Spill(Buffer& b) {
    const std::vector<uint32_t> order = b.SortedNewest();
    const uint8_t* base = reinterpret_cast<const uint8_t*>(b.arena.data());
    auto record_bytes = [&](uint32_t off) {
      Rec r;
      const uint8_t* end = Decode(base + off, &r);
      return std::string_view(reinterpret_cast<const char*>(base + off), size_t(end - (base + off)));
    };
    std::string chunk;
    std::lock_guard<std::mutex> lock(mu);
    Run run;
    if (spill_error.empty()) {
      try {
        if (!file.is_open()) OpenFile();
        run.offset = file_size;
        chunk.reserve(size_t{1} << 20);
        auto write = [&] {
          file.WriteAt(run.offset + run.size, reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
          run.size += chunk.size();
          chunk.clear();
        };
        for (uint32_t off : order) {
          chunk.append(record_bytes(off));
          if (chunk.size() >= (size_t{1} << 20)) write();
        }
        if (!chunk.empty()) write();
        file_size += run.size;
        stats.spilled_bytes += run.size;
      } catch (const Error& e) {
        spill_error = e.what();
        run = Run{};
      }
    }
    if (!spill_error.empty()) {
      run.in_memory = true;
      for (uint32_t off : order) run.memory.append(record_bytes(off));
      run.size = run.memory.size();
    }
    runs.push_back(std::move(run));
    stats.runs++;
    b.arena.clear();
    b.offsets.clear();
  }

  void Summarize(Buffer& b, const RevisionKey& r, const KeyValueView& v, std::string* summary) {
    summary->clear();
    if (!r.tombstone && summarizer) summarizer(v, summary);
    b.Add(r, v, *summary);
    if (b.used() >= buffer_bytes) Spill(b);
  }

  void Scan() {
    if (scanned) throw Error(ErrorCode::kInternal, "LiveKeys::Scan called twice");
    scanned = true;
    std::vector<std::unique_ptr<Buffer>> buffers;
    for (size_t i = 0; i < threads; i++) {
      buffers.push_back(std::make_unique<Buffer>());
      buffers.back()->arena.reserve(buffer_bytes + (size_t{64} << 10));
    }
    if (kv.has_key_bucket()) {
      std::vector<std::string> summaries(threads);
      std::vector<int64_t> entries(threads, 0);
      Walk(entries, [&](size_t w, const RevisionKey& r, const KeyValueView& v) {
        Summarize(*buffers[w], r, v, &summaries[w]);
      });
      for (int64_t n : entries) stats.entries += n;
    }
    if (runs.empty()) {
      for (auto& b : buffers) {
        if (b->offsets.empty()) continue;
        Run run;
        run.order = b->SortedNewest();
        run.buffer = std::move(b);
        runs.push_back(std::move(run));
      }
    } else {
      for (auto& b : buffers) {
        if (!b->offsets.empty()) Spill(*b);
      }
    }
    buffers.clear();
    StartMerge();
  }

  // Walks bucket "key" (on `threads` workers when large, see Reader::ForEachEntryParallel),
  // calling fn(worker, revision, kv) for every entry in range and counting them per worker.
  template <class F>
  void Walk(std::vector<int64_t>& entries, F&& fn) {
    bolt::Reader& reader = kv.reader();
    const std::string& file_name = reader.name();
    const std::string& begin = opts.begin;
    const std::string& end = opts.end;
    const bool single = end.empty();
    const bool to_last = end.size() == 1 && end[0] == '\0';
    reader.ForEachEntryParallel(kKeyBucket, threads, [&](size_t w, Bytes k, Bytes v, bool is_bucket) {
      std::optional<RevisionKey> r = ParseRevisionKey(k);
      if (!r) {
        throw Error(ErrorCode::kDataLoss, file_name + ": bucket key: a key of " + std::to_string(k.size()) +
                                              " bytes is not a revision");
      }
      if (is_bucket) throw Error(ErrorCode::kDataLoss, EntryName(file_name, *r) + ": a bucket, not a value");
      KeyValueView view;
      if (std::optional<std::string> bad = DecodeKeyValueView(v, &view)) {
        throw Error(ErrorCode::kDataLoss, EntryName(file_name, *r) + ": not a KeyValue: " + *bad);
      }
      const std::string_view key = AsString(view.key);
      if (single ? key != begin : (key < std::string_view(begin) || (!to_last && key >= std::string_view(end)))) {
        return;
      }
      entries[w]++;
      if (r->tombstone) view.value = Bytes{};
      fn(w, *r, view);
    }, opts.min_parallel_pages);
  }

  // --- merge ---

  bool Load(Cursor& c) {
    const Run& run = *c.run;
    if (run.buffer) {
      if (c.pos >= run.order.size()) return c.valid = false;
      Decode(reinterpret_cast<const uint8_t*>(run.buffer->arena.data()) + run.order[c.pos], &c.rec);
      return c.valid = true;
    }
    if (c.pos >= run.size) return c.valid = false;
    if (run.in_memory) {
      Decode(reinterpret_cast<const uint8_t*>(run.memory.data()) + c.pos, &c.rec);
      return c.valid = true;
    }
    // The record at c.pos must lie wholly in the buffer; its size is known only once it
    // is decoded, so read more (at least twice what was there) until it fits.
    for (;;) {
      uint64_t have = 0;
      if (c.pos >= c.buf_start && c.pos < c.buf_start + c.buf.size()) {
        have = c.buf_start + c.buf.size() - c.pos;
        const uint8_t* p = reinterpret_cast<const uint8_t*>(c.buf.data()) + (c.pos - c.buf_start);
        if (RecordFits(p, have)) {
          Decode(p, &c.rec);
          return c.valid = true;
        }
        if (c.pos + have >= run.size) {
          throw Error(ErrorCode::kIo, file.path() + ": sorted run ends inside a record");
        }
      }
      const uint64_t left = run.size - c.pos;
      const size_t want = size_t(std::min<uint64_t>(left, std::max<uint64_t>(read_chunk, 2 * have + 64)));
      c.buf.resize(want);
      file.ReadAt(run.offset + c.pos, reinterpret_cast<uint8_t*>(c.buf.data()), want);
      c.buf_start = c.pos;
    }
  }

  // Whether a whole record starts at p within n bytes.
  static bool RecordFits(const uint8_t* p, uint64_t n) {
    const uint8_t* end = p + n;
    auto skip_varint = [&](uint64_t* v) {
      uint64_t out = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return false;
        const uint8_t b = *p++;
        out |= uint64_t(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
          if (v != nullptr) *v = out;
          return true;
        }
      }
      return false;
    };
    uint64_t len = 0;
    if (!skip_varint(&len) || len > uint64_t(end - p)) return false;
    p += len;
    if (!skip_varint(&len) || len > uint64_t(end - p)) return false;
    p += len;
    if (!skip_varint(nullptr) || !skip_varint(nullptr)) return false;
    if (p >= end) return false;
    p++;
    for (int i = 0; i < 5; i++) {
      if (!skip_varint(nullptr)) return false;
    }
    return true;
  }

  void Advance(Cursor& c) {
    const Run& run = *c.run;
    if (run.buffer) {
      c.pos++;
    } else {
      const uint8_t* start = run.in_memory ? reinterpret_cast<const uint8_t*>(run.memory.data()) + c.pos
                                           : reinterpret_cast<const uint8_t*>(c.buf.data()) + (c.pos - c.buf_start);
      Rec r;
      c.pos += uint64_t(Decode(start, &r) - start);
    }
    Load(c);
  }

  // Heap order: std::push_heap keeps the largest on top, so "greater" = earlier in the merge.
  bool After(size_t a, size_t b) const { return Before(cursors[b].rec, cursors[a].rec); }

  void StartMerge() {
    size_t file_runs = 0;
    for (const Run& r : runs) file_runs += (r.in_memory || r.buffer) ? 0 : 1;
    read_chunk = file_runs == 0 ? 0
                                : std::clamp<size_t>(opts.memory_bytes / file_runs, size_t{16} << 10, size_t{1} << 20);
    cursors.assign(runs.size(), Cursor{});
    heap.clear();
    for (size_t i = 0; i < runs.size(); i++) {
      cursors[i].run = &runs[i];
      if (Load(cursors[i])) heap.push_back(i);
    }
    auto cmp = [this](size_t a, size_t b) { return After(a, b); };
    std::make_heap(heap.begin(), heap.end(), cmp);
  }

  bool Next(LiveKey* out) {
    if (!scanned) throw Error(ErrorCode::kInternal, "LiveKeys::Next before Scan");
    auto cmp = [this](size_t a, size_t b) { return After(a, b); };
    auto advance_top = [&] {
      std::pop_heap(heap.begin(), heap.end(), cmp);
      Cursor& c = cursors[heap.back()];
      Advance(c);
      if (c.valid) {
        std::push_heap(heap.begin(), heap.end(), cmp);
      } else {
        heap.pop_back();
      }
    };
    while (!heap.empty()) {
      const Rec r = cursors[heap.front()].rec;
      out_key.assign(r.key);
      out_summary.assign(r.summary);
      advance_top();
      // Older revisions of the same key in other runs.
      while (!heap.empty() && cursors[heap.front()].rec.key == std::string_view(out_key)) advance_top();
      if (r.tombstone) continue;
      out->key = out_key;
      out->summary = out_summary;
      out->create_revision = r.create;
      out->mod_revision = r.mod;
      out->version = r.version;
      out->lease = r.lease;
      out->value_size = r.value_size;
      out->main_revision = r.main;
      out->sub_revision = r.sub;
      return true;
    }
    return false;
  }
};

LiveKeys::LiveKeys(SnapshotKv& kv, LiveKeysOptions options, Summarizer summarizer)
    : impl_(std::make_unique<Impl>(kv, std::move(options), std::move(summarizer))) {}
LiveKeys::~LiveKeys() = default;

void LiveKeys::Scan() { impl_->Scan(); }
bool LiveKeys::Next(LiveKey* out) { return impl_->Next(out); }
int64_t LiveKeys::current_revision() const { return impl_->kv.current_revision(); }
const LiveKeysStats& LiveKeys::stats() const { return impl_->stats; }
const std::string& LiveKeys::spill_error() const { return impl_->spill_error; }

}  // namespace etcdsafe::ops
