#include "base/spill_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace etcdsafe {

SpillStore::SpillStore(size_t chunk_bytes, size_t resident_chunks, std::string temp_dir)
    : chunk_bytes_(std::max<size_t>(chunk_bytes, 1)),
      resident_chunks_(std::max<size_t>(resident_chunks, 2)),
      temp_dir_(std::move(temp_dir)) {}

SpillStore::~SpillStore() = default;

uint64_t SpillStore::Append(const uint8_t* data, size_t n) {
  if (chunks_.empty() || chunks_.back().data->capacity() - chunks_.back().data->size() < n) {
    Chunk c;
    c.data = std::make_shared<std::vector<uint8_t>>();
    c.data->reserve(std::max(chunk_bytes_, n));
    c.last_use = ++tick_;
    chunks_.push_back(std::move(c));
    Trim(chunks_.size() - 1);
  }
  std::vector<uint8_t>& v = *chunks_.back().data;
  uint64_t ref = (uint64_t{chunks_.size() - 1} << 32) | v.size();
  v.insert(v.end(), data, data + n);
  return ref;
}

SpillStore::Chunk& SpillStore::Load(size_t index) {
  Chunk& c = chunks_[index];
  c.last_use = ++tick_;
  if (!c.data) {
    auto buf = std::make_shared<std::vector<uint8_t>>(c.size);
    file_.ReadAt(c.file_offset, buf->data(), buf->size());
    c.data = std::move(buf);
    Trim(index);
  }
  return c;
}

SpillStore::View SpillStore::At(uint64_t ref) {
  Chunk& c = Load(static_cast<size_t>(ref >> 32));
  return View{c.data->data() + (ref & 0xFFFFFFFFu), c.data};
}

void SpillStore::Read(uint64_t ref, void* out, size_t n) {
  Chunk& c = Load(static_cast<size_t>(ref >> 32));
  std::memcpy(out, c.data->data() + (ref & 0xFFFFFFFFu), n);
}

void SpillStore::Overwrite(uint64_t ref, const uint8_t* data, size_t n) {
  Chunk& c = chunks_[static_cast<size_t>(ref >> 32)];
  const uint64_t off = ref & 0xFFFFFFFFu;
  if (c.data) std::memcpy(c.data->data() + off, data, n);
  if (c.on_disk) file_.WriteAt(c.file_offset + off, data, n);  // cached copies may be dropped
}

size_t SpillStore::memory_bytes() const {
  size_t total = 0;
  for (const Chunk& c : chunks_) {
    if (c.data) total += c.data->capacity();
  }
  return total;
}

// Drops chunks from memory until at most resident_chunks_ remain, never the newest chunk
// (still being appended to) nor `keep_index` (just used): cached copies of spilled chunks
// first, least recently used first; then the oldest chunks not yet on disk, spilled.
void SpillStore::Trim(size_t keep_index) {
  size_t resident = 0;
  for (const Chunk& c : chunks_) resident += c.data ? 1 : 0;
  const size_t newest = chunks_.size() - 1;
  while (resident > resident_chunks_) {
    Chunk* victim = nullptr;
    for (size_t i = 0; i < chunks_.size(); i++) {
      Chunk& c = chunks_[i];
      if (!c.data || !c.on_disk || i == keep_index || i == newest) continue;
      if (victim == nullptr || c.last_use < victim->last_use) victim = &c;
    }
    if (victim == nullptr) {
      for (size_t i = 0; i < chunks_.size() && victim == nullptr; i++) {
        Chunk& c = chunks_[i];
        if (c.data && !c.on_disk && i != keep_index && i != newest) victim = &c;
      }
      if (victim == nullptr || !spill_error_.empty()) return;
      try {
        Spill(*victim);
      } catch (const Error& e) {
        spill_error_ = e.what();  // keep it in memory; see the header
        return;
      }
    }
    victim->data.reset();
    resident--;
  }
}

void SpillStore::Spill(Chunk& c) {
  if (!file_.is_open()) OpenFile();
  const size_t size = c.data->size();
  file_.WriteAt(file_size_, c.data->data(), size);  // throws before any state changes
  c.size = size;
  c.file_offset = file_size_;
  file_size_ += size;
  c.on_disk = true;
}

void SpillStore::OpenFile() { file_ = OpenUnnamedTemp(temp_dir_, "spill file"); }

}  // namespace etcdsafe
