// Blocking producer/consumer queues bounded by total bytes, used to overlap network
// receive with hashing, checking, compressing and writing (one thread receives, others
// consume) while keeping memory bounded whatever the snapshot size. Thread-safe.
//
//  * BoundedQueue: one consumer; items are moved in and out.
//  * BroadcastQueue: N consumers that each see every item, in order, without a copy: an
//    item stays queued (and counted against the bound) until every consumer is past it,
//    so the bound holds however far the consumers drift apart.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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

class BroadcastQueue {
 public:
  BroadcastQueue(size_t consumers, size_t max_bytes) : next_(consumers, 0), max_bytes_(max_bytes) {}

  // Blocks while the queue is full (an item larger than the bound still goes in alone).
  // Returns false once the queue was aborted.
  bool Push(std::string item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return aborted_ || bytes_ == 0 || bytes_ + item.size() <= max_bytes_; });
    if (aborted_) return false;
    bytes_ += item.size();
    items_.push_back(std::move(item));
    not_empty_.notify_all();
    return true;
  }

  // Whether Push of `n` bytes would return without waiting (true once aborted: Push then
  // returns false at once). With one producer, room only grows until its next Push.
  bool HasRoom(size_t n) {
    std::lock_guard lock(mu_);
    return aborted_ || bytes_ == 0 || bytes_ + n <= max_bytes_;
  }

  // Consumer `c`'s next item, blocking until there is one. The pointer stays valid until
  // that consumer's next Pop. nullptr at the end: closed and drained, or aborted.
  const std::string* Pop(size_t c) {
    std::unique_lock lock(mu_);
    if (popped_any_[c]) {
      popped_any_[c] = false;
      Release(c);
    }
    not_empty_.wait(lock, [&] { return aborted_ || closed_ || next_[c] < first_ + items_.size(); });
    if (aborted_ || next_[c] == first_ + items_.size()) return nullptr;
    popped_any_[c] = true;
    return &items_[next_[c] - first_];
  }

  // No more pushes; consumers drain what is left, then get nullptr.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

  // Stops everything now: Push returns false, Pop nullptr (a consumer failed).
  void Abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  // Consumer c is done with its current item; drop items every consumer is past.
  void Release(size_t c) {
    next_[c]++;
    bool freed = false;
    while (!items_.empty()) {
      for (uint64_t n : next_) {
        if (n == first_) return Notify(freed);
      }
      bytes_ -= items_.front().size();
      items_.pop_front();
      first_++;
      freed = true;
    }
    Notify(freed);
  }
  void Notify(bool freed) {
    if (freed) not_full_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::string> items_;  // references stay valid across push_back/pop_front
  uint64_t first_ = 0;             // index of items_.front() in the stream
  std::vector<uint64_t> next_;     // per consumer: index of its current/next item
  std::vector<bool> popped_any_ = std::vector<bool>(next_.size(), false);
  size_t bytes_ = 0;
  size_t max_bytes_;
  bool closed_ = false, aborted_ = false;
};

}  // namespace etcdsafe
