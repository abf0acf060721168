#include "progress.h"

#include <unistd.h>

#include <cstdio>

#include "snapshot/status_format.h"

namespace etcdsafe::cli {

ProgressLine::ProgressLine(std::string label)
    : label_(std::move(label)),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

ProgressLine::~ProgressLine() { Done(); }

void ProgressLine::Update(uint64_t bytes) {
  if (!enabled_) return;
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (shown_ && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  uint64_t rate = secs > 0 ? static_cast<uint64_t>(static_cast<double>(bytes) / secs) : 0;
  std::fprintf(stderr, "\r\033[K%s: %s, %s/s", label_.c_str(),
               snapshot::HumanizeBytes(bytes).c_str(), snapshot::HumanizeBytes(rate).c_str());
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::Done() {
  std::lock_guard lock(mu_);
  if (enabled_ && shown_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  shown_ = false;
}

}  // namespace etcdsafe::cli
