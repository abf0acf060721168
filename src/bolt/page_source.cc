#include "bolt/page_source.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace etcdsafe::bolt {

struct PageSource::Window {
  size_t len = 0;
  std::unique_ptr<uint8_t[]> buf;
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

std::unique_ptr<PageSource> PageSource::Clone() const {
  std::unique_ptr<PageSource> s(new PageSource());
  s->name_ = name_;
  s->size_ = size_;
  s->memory_ = memory_;
  s->patch_offset_ = patch_offset_;
  s->patch_ = patch_;
  if (memory_ == nullptr) {
    int fd = ::fcntl(file_.fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw SystemError("dup " + name_, errno);
    s->file_ = File(fd, name_);
  }
  return s;
}

PageSource::~PageSource() = default;

std::shared_ptr<PageSource::Window> PageSource::GetWindow(uint64_t index) {
  ++tick_;
  for (Slot& slot : slots_) {
    if (slot.index == index) {
      slot.last_use = tick_;
      return slot.window;
    }
  }
  Slot* victim = nullptr;
  if (slots_.size() >= kMaxWindows) {
    victim = &slots_[0];
    for (Slot& slot : slots_) {
      if (slot.last_use < victim->last_use) victim = &slot;
    }
  }
  uint64_t start = index * kWindowSize;
  std::shared_ptr<Window> w;
  if (victim != nullptr && victim->window.use_count() == 1) {
    w = std::move(victim->window);  // no PageRef pins it: reuse its buffer
  } else {
    w = std::make_shared<Window>();
    w->buf.reset(new uint8_t[std::min<uint64_t>(kWindowSize, size_)]);
  }
  w->len = static_cast<size_t>(std::min<uint64_t>(kWindowSize, size_ - start));
  try {
    file_.ReadAt(start, w->buf.get(), w->len);  // a file shrunk under us: kDataLoss
  } catch (...) {
    if (victim != nullptr) *victim = Slot{UINT64_MAX, 0, nullptr};
    throw;
  }
  if (victim == nullptr) {
    slots_.push_back({index, tick_, w});
  } else {
    *victim = {index, tick_, w};  // a pinned old window lives on in its PageRefs
  }
  return w;
}

void PageSource::SetPatch(uint64_t offset, std::string bytes) {
  patch_offset_ = offset;
  patch_ = std::move(bytes);
}

PageRef PageSource::ReadExact(uint64_t offset, size_t len) {
  if (memory_ != nullptr || !patch_.empty() || len == 0 || offset > size_ || len > size_ - offset) {
    return Read(offset, len);  // its fast paths, and its errors
  }
  const uint64_t first = offset / kWindowSize;
  if (first == (offset + len - 1) / kWindowSize) {
    for (Slot& slot : slots_) {
      if (slot.index == first && slot.window != nullptr) {
        slot.last_use = ++tick_;
        return PageRef(slot.window->buf.get() + (offset - first * kWindowSize), len, offset, slot.window);
      }
    }
  }
  auto buf = std::make_shared<std::vector<uint8_t>>(len);
  file_.ReadAt(offset, buf->data(), len);
  const uint8_t* p = buf->data();
  return PageRef(p, len, offset, std::move(buf));
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
    const uint8_t* p = w->buf.get() + (offset - first * kWindowSize);
    return PageRef(p, len, offset, std::move(w));
  }
  // Crosses a window boundary: copy. Rare (overflow runs of big values).
  auto buf = std::make_shared<std::vector<uint8_t>>(len);
  file_.ReadAt(offset, buf->data(), len);
  const uint8_t* p = buf->data();
  return PageRef(p, len, offset, std::move(buf));
}

}  // namespace etcdsafe::bolt
