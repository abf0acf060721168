// A blocking producer/consumer queue bounded by total bytes, used to overlap network
// receive with hashing and disk writes (two cores: one receives, one hashes and writes)
// while keeping memory bounded whatever the snapshot size. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

namespace etcdsafe {

class BoundedQueue {
 public:
  explicit BoundedQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Blocks while the queue is full. Returns false if the queue was closed (the consumer
  // failed), so the producer can stop early.
  bool Push(std::string item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || bytes_ == 0 || bytes_ + item.size() <= max_bytes_; });
    if (closed_) return false;
    bytes_ += item.size();
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // Blocks until an item is available; nullopt once closed and drained.
  std::optional<std::string> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    std::string item = std::move(items_.front());
    items_.pop_front();
    bytes_ -= item.size();
    not_full_.notify_one();
    return item;
  }

  // No more pushes; Pop drains what is left, then returns nullopt.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::string> items_;
  size_t bytes_ = 0;
  size_t max_bytes_;
  bool closed_ = false;
};

}  // namespace etcdsafe
