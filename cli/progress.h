// Progress line on stderr for long work ("saving snapshot: 512.0 MB, 110.3 MB/s"),
// only when stderr is a terminal, throttled to a few updates per second. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace etcdsafe::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::string label);
  ~ProgressLine();
  void Update(uint64_t bytes);
  // Clears the line (before printing a result or an error).
  void Done();

 private:
  std::string label_;
  bool enabled_;
  bool shown_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace etcdsafe::cli
