#include "bolt/page_source.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace etcdsafe::bolt {

struct PageSource::Window {
  void* addr = MAP_FAILED;
  size_t len = 0;
  ~Window() {
    if (addr != MAP_FAILED) munmap(addr, len);
  }
};

std::unique_ptr<PageSource> PageSource::OpenFile(const std::string& path) {
  std::unique_ptr<PageSource> s(new PageSource());
  s->file_ = File::OpenRead(path);
  s->size_ = s->file_.Size();
  s->name_ = path;
  return s;
}

std::unique_ptr<PageSource> PageSource::FromMemory(Bytes data, std::string name) {
  std::unique_ptr<PageSource> s(new PageSource());
  s->memory_ = data.data();
  s->size_ = data.size();
  s->name_ = std::move(name);
  return s;
}

PageSource::~PageSource() = default;

std::shared_ptr<const PageSource::Window> PageSource::GetWindow(uint64_t index) {
  ++tick_;
  for (Slot& slot : slots_) {
    if (slot.index == index) {
      slot.last_use = tick_;
      return slot.window;
    }
  }
  auto w = std::make_shared<Window>();
  uint64_t start = index * kWindowSize;
  w->len = static_cast<size_t>(std::min<uint64_t>(kWindowSize, size_ - start));
  // MAP_POPULATE: one syscall faults the whole window in, far cheaper than 1024 faults
  // during a sequential scan.
  w->addr = mmap(nullptr, w->len, PROT_READ, MAP_SHARED | MAP_POPULATE, file_.fd(),
                 static_cast<off_t>(start));
  if (w->addr == MAP_FAILED) throw SystemError("mmap " + name_, errno);
  if (slots_.size() < kMaxWindows) {
    slots_.push_back({index, tick_, w});
  } else {
    Slot* victim = &slots_[0];
    for (Slot& slot : slots_) {
      if (slot.last_use < victim->last_use) victim = &slot;
    }
    *victim = {index, tick_, w};  // old window unmaps once no PageRef pins it
  }
  return w;
}

void PageSource::SetPatch(uint64_t offset, std::string bytes) {
  patch_offset_ = offset;
  patch_ = std::move(bytes);
}

PageRef PageSource::Read(uint64_t offset, size_t len) {
  if (offset > size_ || len > size_ - offset) {
    throw Error(ErrorCode::kDataLoss, name_ + ": read of " + std::to_string(len) +
                                          " bytes at offset " + std::to_string(offset) +
                                          " is past the end of the file (" +
                                          std::to_string(size_) + " bytes)");
  }
  if (!patch_.empty() && offset < patch_offset_ + patch_.size() && patch_offset_ < offset + len) {
    auto buf = std::make_shared<std::vector<uint8_t>>(len);
    if (memory_ != nullptr) {
      std::memcpy(buf->data(), memory_ + offset, len);
    } else {
      file_.ReadAt(offset, buf->data(), len);
    }
    for (size_t i = 0; i < patch_.size(); i++) {
      uint64_t at = patch_offset_ + i;
      if (at >= offset && at < offset + len) (*buf)[at - offset] = static_cast<uint8_t>(patch_[i]);
    }
    const uint8_t* p = buf->data();
    return PageRef(p, len, offset, std::move(buf));
  }
  if (memory_ != nullptr) return PageRef(memory_ + offset, len, offset, nullptr);
  if (len == 0) return PageRef(reinterpret_cast<const uint8_t*>(""), 0, offset, nullptr);
  uint64_t first = offset / kWindowSize;
  uint64_t last = (offset + len - 1) / kWindowSize;
  if (first == last) {
    auto w = GetWindow(first);
    const uint8_t* p = static_cast<const uint8_t*>(w->addr) + (offset - first * kWindowSize);
    return PageRef(p, len, offset, std::move(w));
  }
  // Crosses a window boundary: copy. Rare (overflow runs of big values).
  auto buf = std::make_shared<std::vector<uint8_t>>(len);
  file_.ReadAt(offset, buf->data(), len);
  const uint8_t* p = buf->data();
  return PageRef(p, len, offset, std::move(buf));
}

}  // namespace etcdsafe::bolt
