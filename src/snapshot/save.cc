#include "snapshot/save.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/bounded_queue.h"
#include "base/bytes.h"
#include "base/direct_writer.h"
#include "base/error.h"
#include "base/file.h"
#include "snapshot/trailer.h"

namespace etcdsafe::snapshot {
namespace {

// Enough to ride out disk hiccups without letting memory grow with the snapshot.
constexpr size_t kQueueBytes = 4 << 20;
// What PumpStream hands its consumers at a time (at most a quarter of the queue).
constexpr size_t kBatchBytes = 1 << 20;

// Thrown into the stream when a consumer thread has already failed, to stop receiving.
struct ConsumerFailed {};

}  // namespace

void PumpStream(const SnapshotStream& stream, const std::vector<StreamConsumer>& consumers, size_t queue_bytes,
                SpillFifo* fifo) {
  BroadcastQueue queue(consumers.size(), queue_bytes);
  std::mutex mu;
  std::exception_ptr first_error;  // the first failure in time, of any side
  auto fail = [&](std::exception_ptr e) {
    {
      std::lock_guard lock(mu);
      if (!first_error) first_error = std::move(e);
    }
    queue.Abort();
  };
  std::vector<std::thread> threads;
  threads.reserve(consumers.size());
  try {
    for (size_t i = 0; i < consumers.size(); i++) {
      threads.emplace_back([&, i] {
        try {
          const StreamConsumer& c = consumers[i];
          while (const std::string* chunk = queue.Pop(i)) {
            c.consume(reinterpret_cast<const uint8_t*>(chunk->data()), chunk->size());
          }
          // nullptr: the end of a stream that completed (Close), or an abort (skip finish).
          bool completed = false;
          {
            std::lock_guard lock(mu);
            completed = !first_error;
          }
          if (completed && c.finish) c.finish();
        } catch (...) {
          fail(std::current_exception());
        }
      });
    }
    // etcd sends 32 KiB messages: queued one by one, each cost an allocation and a wake-up
    // of every consumer (~35,000 per GB, measured as a fifth of backup's CPU in context
    // switches). They are gathered into batches instead; the copy is the one each message
    // had anyway.
    const size_t batch_bytes = std::max<size_t>(std::min(kBatchBytes, queue_bytes / 4), 1);
    auto push = [&](std::string b) {
      if (!queue.Push(std::move(b))) throw ConsumerFailed{};
    };
    // Hands a full batch on. With a spill: what waits on disk goes first, as far as the
    // queue has room (the one pusher: room cannot shrink between HasRoom and Push); the
    // batch joins the queue only behind it, else the spill; where the spill refuses, the
    // stream waits for room after all.
    auto deliver = [&](std::string b) {
      if (!fifo) return push(std::move(b));
      while (!fifo->empty() && queue.HasRoom(fifo->front_size())) push(fifo->Pop());
      if (fifo->empty() && queue.HasRoom(b.size())) return push(std::move(b));
      if (fifo->Push(b)) return;
      while (!fifo->empty()) push(fifo->Pop());
      push(std::move(b));
    };
    std::string batch;
    stream([&](const uint8_t* data, size_t n) {
      if (batch.capacity() < batch_bytes) batch.reserve(batch_bytes);
      batch.append(reinterpret_cast<const char*>(data), n);
      if (batch.size() >= batch_bytes) deliver(std::exchange(batch, std::string()));
    });
    if (fifo) {
      while (!fifo->empty()) push(fifo->Pop());
    }
    if (!batch.empty()) push(std::move(batch));
    queue.Close();
  } catch (const ConsumerFailed&) {
    // A consumer's own error is the one to report.
  } catch (...) {
    fail(std::current_exception());
  }
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

void PumpStream(const SnapshotStream& stream, const BlobSink& consume) {
  PumpStream(stream, {StreamConsumer{consume, {}}}, kQueueBytes);
}

std::string SaveTempPrefix(const std::string& path) { return BaseName(path) + ".etcdsafe-"; }

void CheckSaveTarget(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kAlreadyExists, path + ": is a directory; snapshot save needs a file name");
  }
  const std::string dir = ParentDir(path);
  if (!IsDirectory(dir)) {
    throw Error(ErrorCode::kNotFound, path + ": directory " + dir + " does not exist");
  }
}

SaveResult SaveSnapshot(const SnapshotStream& stream, const std::string& path,
                        const std::function<void(uint64_t)>& progress, const NoteFn& note) {
  CheckSaveTarget(path);
  const std::string dir = ParentDir(path);
  for (const auto& leftover : RemoveStaleTemps(dir, SaveTempPrefix(path), kSaveTempSuffix)) {
    std::string line = "removed " + leftover + ", left by an interrupted save";
    if (note) {
      note(line);
    } else {
      std::fprintf(stderr, "etcdsafe: note: %s\n", line.c_str());
    }
  }
  // A name of our own (O_EXCL), locked while we live: a concurrent save to the same path
  // writes its own file, and a later save can tell our leftover (if we are killed) from
  // a live run's file.
  LockedTemp part(dir, SaveTempPrefix(path), kSaveTempSuffix, LockedTemp::Kind::kFile, 0600);
  // Direct writes go to the disk while the stream runs, instead of piling up as dirty
  // page cache that the final fsync must push out (see DirectWriter).
  DirectWriter out(part.OpenForWrite());
  TrailerVerifier verifier;
  uint8_t* buf = nullptr;
  size_t filled = 0;
  PumpStream(stream, [&](const uint8_t* p, size_t n) {
    verifier.Update(p, n);
    while (n > 0) {
      if (buf == nullptr) {
        buf = out.Buffer();
        filled = 0;
      }
      size_t k = std::min(n, DirectWriter::kChunkSize - filled);
      std::memcpy(buf + filled, p, k);
      filled += k;
      p += k;
      n -= k;
      if (filled == DirectWriter::kChunkSize) {
        out.Submit(filled);
        buf = nullptr;
      }
    }
    if (progress) progress(verifier.bytes_seen());
  });

  TrailerVerifier::Result v = verifier.Finish();
  if (!v.has_trailer) {
    throw Error(ErrorCode::kDataLoss,
                "sha256 checksum not found [bytes: " + std::to_string(verifier.bytes_seen()) + "]");
  }
  if (!v.matches) {
    throw Error(ErrorCode::kDataLoss, "snapshot sha256 mismatch: server sent " +
                                          HexBytes(v.trailer) + ", received db hashes to " +
                                          HexBytes(v.computed));
  }
  if (buf != nullptr) out.Submit(filled);
  out.Finish();  // fsyncs
  TestPause("save-before-rename");
  part.CommitTo(path);  // renames the file this run wrote, inside a CommitSection
  return SaveResult{v.db_size, verifier.bytes_seen(), v.computed};
}

}  // namespace etcdsafe::snapshot
