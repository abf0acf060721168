#include "base/spill_fifo.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/error.h"

namespace etcdsafe {

namespace {
// Consumed space is given back to the filesystem in steps of this size.
constexpr uint64_t kPunchStep = 16 << 20;
}  // namespace

SpillFifo::SpillFifo(std::string temp_dir, uint64_t max_bytes)
    : temp_dir_(std::move(temp_dir)), max_bytes_(max_bytes) {}

bool SpillFifo::Open() {
  if (failed_) return false;
  if (file_.is_open()) return true;
  try {
    file_ = OpenUnnamedTemp(temp_dir_, "stream spill file");
    max_bytes_ = std::min(max_bytes_, FreeSpace(TempDirOr(temp_dir_)) / 2);
  } catch (const Error& e) {
    failed_ = true;
    error_ = e.what();
    return false;
  }
  return true;
}

bool SpillFifo::Push(const std::string& batch) {
  if (!Open() || bytes() + batch.size() > max_bytes_) return false;
  try {
    file_.WriteAt(tail_, reinterpret_cast<const uint8_t*>(batch.data()), batch.size());
  } catch (const Error& e) {
    failed_ = true;
    error_ = e.what();
    return false;
  }
  tail_ += batch.size();
  total_ += batch.size();
  sizes_.push_back(batch.size());
  peak_ = std::max(peak_, bytes());
  return true;
}

std::string SpillFifo::Pop() {
  const size_t n = sizes_.front();
  std::string out(n, '\0');
  file_.ReadAt(head_, reinterpret_cast<uint8_t*>(out.data()), n);
  sizes_.pop_front();
  head_ += n;
  if (sizes_.empty()) {
    // Empty: start over at offset 0 with no blocks allocated. A failure only costs disk.
    if (::ftruncate(file_.fd(), 0) == 0) head_ = tail_ = punched_ = 0;
  } else if (head_ - punched_ >= kPunchStep) {
    const uint64_t upto = head_ / kPunchStep * kPunchStep;
    if (::fallocate(file_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(punched_),
                    static_cast<off_t>(upto - punched_)) == 0) {
      punched_ = upto;
    }
  }
  return out;
}

}  // namespace etcdsafe
