#include "base/direct_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/error.h"

namespace etcdsafe {
namespace {

constexpr size_t kAlign = 4096;

}  // namespace

DirectWriter::DirectWriter(const std::string& path, mode_t mode, WriteMode how) : how_(how) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  const bool want_direct = how == WriteMode::kDirect;
  int fd;
  {
    CommitSection section;  // no path appears behind an interrupt cleanup's back
    fd = ::open(path.c_str(), flags | (want_direct ? O_DIRECT : 0), mode);
    direct_ = fd >= 0 && want_direct;
    if (fd < 0 && errno == EINVAL) fd = ::open(path.c_str(), flags, mode);  // no O_DIRECT here
  }
  if (fd < 0) throw SystemError("create " + path, errno);
  file_ = File(fd, path);
  if (::fchmod(fd, mode) != 0) throw SystemError("chmod " + path, errno);
  StartThread();
}

DirectWriter::DirectWriter(File file) : file_(std::move(file)) {
  int fl = ::fcntl(file_.fd(), F_GETFL);
  if (fl < 0) throw SystemError("fcntl " + file_.path(), errno);
  direct_ = ::fcntl(file_.fd(), F_SETFL, fl | O_DIRECT) == 0;  // EINVAL: no O_DIRECT here
  StartThread();
}

void DirectWriter::StartThread() {
  for (size_t i = 0; i < kBuffers; i++) {
    void* p = std::aligned_alloc(kAlign, kChunkSize);
    if (p == nullptr) throw Error(ErrorCode::kIo, "out of memory for write buffers");
    storage_.emplace_back(static_cast<uint8_t*>(p), std::free);
    free_.push_back(static_cast<uint8_t*>(p));
  }
  thread_ = std::thread([this] { WriterLoop(); });
}

DirectWriter::~DirectWriter() { Stop(); }

void DirectWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint8_t* DirectWriter::Buffer() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return error_ || !free_.empty(); });
  if (error_) std::rethrow_exception(error_);
  filling_ = free_.front();
  free_.pop_front();
  return filling_;
}

void DirectWriter::Submit(size_t n) {
  std::unique_lock lock(mu_);
  if (error_) std::rethrow_exception(error_);
  if (filling_ == nullptr || n > kChunkSize || tail_written_) {
    throw Error(ErrorCode::kInternal, "DirectWriter::Submit without a buffer or after a short chunk");
  }
  tail_written_ = n < kChunkSize;
  queued_.push_back({filling_, n});
  filling_ = nullptr;
  cv_.notify_all();
}

void DirectWriter::Finish() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return error_ || (queued_.empty() && !writing_); });
  }
  Stop();
  if (error_) std::rethrow_exception(error_);
  if (how_ != WriteMode::kScratch) file_.Sync();
  file_.Close();
}

void DirectWriter::WriterLoop() {
  for (;;) {
    Chunk c;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !queued_.empty(); });
      if (queued_.empty() || error_) return;
      c = queued_.front();
      queued_.pop_front();
      writing_ = true;
    }
    std::exception_ptr err;
    try {
      WriteChunk(c);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      free_.push_back(c.data);
      if (err && !error_) error_ = err;
    }
    cv_.notify_all();
    if (err) return;
  }
}

void DirectWriter::DisableDirect() {
  int fl = ::fcntl(file_.fd(), F_GETFL);
  if (fl < 0 || ::fcntl(file_.fd(), F_SETFL, fl & ~O_DIRECT) != 0) {
    throw SystemError("fcntl " + file_.path(), errno);
  }
  direct_ = false;
}

void DirectWriter::WriteChunk(const Chunk& c) {
  const uint64_t start = offset_;
  WriteAll(c);
  if (how_ != WriteMode::kCached) return;
  // Streamed writeback: this chunk goes to the device now, and the chunk 4 back must be
  // on it before we go on (bounds the dirty pages). Errors here show again at fsync.
  constexpr uint64_t kLagBytes = 4 * uint64_t{kChunkSize};
  ::sync_file_range(file_.fd(), static_cast<off_t>(start), static_cast<off_t>(c.size), SYNC_FILE_RANGE_WRITE);
  if (start >= kLagBytes) {
    ::sync_file_range(file_.fd(), static_cast<off_t>(start - kLagBytes), static_cast<off_t>(kChunkSize),
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  }
}

void DirectWriter::WriteAll(const Chunk& c) {
  const uint8_t* p = c.data;
  size_t left = c.size;
  while (left > 0) {
    // O_DIRECT needs aligned lengths: the unaligned end of the file goes through the
    // page cache, which Finish's fsync covers.
    size_t n = left;
    if (direct_ && n % kAlign != 0) {
      n -= n % kAlign;
      if (n == 0) {
        DisableDirect();
        n = left;
      }
    }
    ssize_t w = ::pwrite(file_.fd(), p, n, static_cast<off_t>(offset_));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {  // refused after all (or a short write misaligned us)
        DisableDirect();
        continue;
      }
      throw SystemError("write " + file_.path(), errno);
    }
    if (w == 0) throw SystemError("write " + file_.path(), ENOSPC);
    p += w;
    offset_ += static_cast<uint64_t>(w);
    left -= static_cast<size_t>(w);
  }
}

}  // namespace etcdsafe
