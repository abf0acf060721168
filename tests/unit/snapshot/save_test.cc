// SaveSnapshot with the byte stream of a real etcd snapshot fed in chunks (the
// end-to-end test against a live server is in tests/integration).
#include "snapshot/save.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "base/error.h"
#include "base/file.h"
#include "snapshot/trailer.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::snapshot {
namespace {

const std::string kSmall = std::string(ETCDSAFE_TESTDATA) + "/small.db";

SnapshotStream StreamOf(const std::string& bytes, size_t chunk) {
  return [bytes, chunk](const BlobSink& sink) {
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      size_t n = std::min(chunk, bytes.size() - off);
      sink(reinterpret_cast<const uint8_t*>(bytes.data() + off), n);
    }
  };
}

TEST(Save, WritesExactBytesWithMode0600) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall);
  for (size_t chunk : {size_t(1), size_t(31), size_t(32), size_t(4096), size_t(32768)}) {
    std::string out = dir.Sub("s" + std::to_string(chunk) + ".db");
    uint64_t last_progress = 0;
    SaveResult r = SaveSnapshot(StreamOf(src, chunk), out, [&](uint64_t b) { last_progress = b; });
    EXPECT_EQ(testutil::ReadFile(out), src);
    EXPECT_EQ(r.file_size, src.size());
    EXPECT_EQ(r.db_size, src.size() - 32);
    EXPECT_EQ(last_progress, src.size());
    struct stat st;
    ASSERT_EQ(::stat(out.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(PathExists(out + ".part"));
  }
  // Nothing but the saved files: no temporary survives.
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().extension(), ".db") << e.path();
    n++;
  }
  EXPECT_EQ(n, 5u);
}

TEST(Save, FlippedByteIsCaughtAndNothingIsLeft) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall);
  src[5000] ^= 0x01;
  std::string out = dir.Sub("bad.db");
  try {
    SaveSnapshot(StreamOf(src, 32768), out);
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(PathExists(out));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Save, ShortStreamHasNoTrailer) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall).substr(0, 10000);
  std::string out = dir.Sub("short.db");
  try {
    SaveSnapshot(StreamOf(src, 4096), out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "sha256 checksum not found [bytes: 10000]");
  }
  EXPECT_FALSE(PathExists(out + ".part"));
}

TEST(Save, StreamErrorPropagatesAndRemovesPart) {
  testutil::TempDir dir;
  std::string out = dir.Sub("x.db");
  SnapshotStream failing = [](const BlobSink& sink) {
    std::string chunk(32768, 'a');
    sink(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
    throw Error(ErrorCode::kUnavailable, "connection reset mid-stream");
  };
  try {
    SaveSnapshot(failing, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  EXPECT_FALSE(PathExists(out));
  EXPECT_FALSE(PathExists(out + ".part"));
}

TEST(Save, UnwritableDirectoryIsAnIoError) {
  try {
    SaveSnapshot(StreamOf("x", 1), "/nonexistent-dir/etcdsafe/x.db");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

// Issue 12 §5: two saves to one path. The second used to unlink the first's "<path>.part"
// and create its own; the first then renamed that (still empty) file by name and reported
// "sha256 verified" on a 0-byte snapshot. Each run now renames the file it wrote.
TEST(Save, TwoConcurrentSavesToOnePathEachCommitTheirOwnFile) {
  testutil::TempDir dir;
  const std::string src = testutil::ReadFile(kSmall);
  const std::string out = dir.Sub("same.db");
  std::promise<void> b_started, a_done;
  std::shared_future<void> a_done_f = a_done.get_future().share();
  auto half = [&](const BlobSink& sink, size_t from, size_t to) {
    sink(reinterpret_cast<const uint8_t*>(src.data() + from), to - from);
  };
  // A streams half, waits until B has started writing, then finishes.
  std::future<SaveResult> a = std::async(std::launch::async, [&] {
    return SaveSnapshot([&](const BlobSink& sink) {
      half(sink, 0, 10000);
      b_started.get_future().wait();
      half(sink, 10000, src.size());
    }, out);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // A's temporary exists
  // B starts (creating its temporary), streams a little, and waits until A committed.
  std::future<SaveResult> b = std::async(std::launch::async, [&] {
    return SaveSnapshot([&](const BlobSink& sink) {
      half(sink, 0, 100);
      b_started.set_value();
      a_done_f.wait();
      half(sink, 100, src.size());
    }, out);
  });
  SaveResult ra = a.get();
  EXPECT_EQ(testutil::ReadFile(out), src) << "the first save committed a file it did not write";
  a_done.set_value();
  SaveResult rb = b.get();
  EXPECT_EQ(ra.file_size, src.size());
  EXPECT_EQ(rb.file_size, src.size());
  EXPECT_EQ(testutil::ReadFile(out), src);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    entries++;
  }
  EXPECT_EQ(entries, 1u) << "a temporary was left behind";
}

// Leftovers of killed saves (exact pattern, lock free) are removed by the next save to
// the same path, with a note; a live run's temporary (lock held) and look-alikes stay.
TEST(Save, NextSaveRemovesOnlyDeadRunsLeftovers) {
  testutil::TempDir dir;
  const std::string src = testutil::ReadFile(kSmall);
  const std::string out = dir.Sub("s.db");
  testutil::WriteFile(dir.Sub("s.db.etcdsafe-Kill9x.part"), std::string(5000, 'k'));
  testutil::WriteFile(dir.Sub("s.db.etcdsafe-Live00.part"), "a live save");
  testutil::WriteFile(dir.Sub("s.db.part"), "not our pattern");
  testutil::WriteFile(dir.Sub("other.db.etcdsafe-Kill9x.part"), "another target's");
  int held = ::open(dir.Sub("s.db.etcdsafe-Live00.part").c_str(), O_RDONLY);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  std::vector<std::string> notes;
  SaveSnapshot(StreamOf(src, 4096), out, {}, [&](const std::string& n) { notes.push_back(n); });
  ::close(held);
  EXPECT_EQ(notes, std::vector<std::string>{"removed " + dir.Sub("s.db.etcdsafe-Kill9x.part") +
                                            ", left by an interrupted save"});
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"s.db", "s.db.etcdsafe-Live00.part", "s.db.part",
                                          "other.db.etcdsafe-Kill9x.part"}));
  EXPECT_EQ(testutil::ReadFile(out), src);
}

// Issue 12 §6: a directory as the target used to stream the whole snapshot, then fail.
TEST(Save, DirectoryTargetFailsBeforeStreaming) {
  testutil::TempDir dir;
  MakeDirs(dir.Sub("adir"), 0700);
  ASSERT_EQ(::symlink(dir.Sub("adir").c_str(), dir.Sub("link").c_str()), 0);
  for (const std::string& target : {dir.Sub("adir"), dir.Sub("link")}) {
    bool streamed = false;
    try {
      SaveSnapshot([&](const BlobSink&) { streamed = true; }, target);
      FAIL() << target;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists) << e.what();
      EXPECT_EQ(std::string(e.what()), target + ": is a directory; snapshot save needs a file name");
    }
    EXPECT_FALSE(streamed);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.Sub("adir")));
}

// PumpStream with several consumers: each sees every byte in order, whatever the chunking.
TEST(PumpStream, EveryConsumerSeesEveryByteInOrder) {
  std::string src = testutil::ReadFile(kSmall);
  for (size_t queue : {size_t(1), size_t(4096), size_t(1) << 20}) {
    std::string a, b, c;
    int finished = 0;
    std::mutex mu;
    PumpStream(StreamOf(src, 4093),
               {StreamConsumer{[&](const uint8_t* p, size_t n) { a.append(reinterpret_cast<const char*>(p), n); },
                               [&] { std::lock_guard l(mu); finished++; }},
                StreamConsumer{[&](const uint8_t* p, size_t n) {
                                 std::this_thread::sleep_for(std::chrono::microseconds(50));  // a slow one
                                 b.append(reinterpret_cast<const char*>(p), n);
                               },
                               [&] { std::lock_guard l(mu); finished++; }},
                StreamConsumer{[&](const uint8_t* p, size_t n) { c.append(reinterpret_cast<const char*>(p), n); }, {}}},
               queue);
    EXPECT_EQ(a, src);
    EXPECT_EQ(b, src);
    EXPECT_EQ(c, src);
    EXPECT_EQ(finished, 2);
  }
}

// The bound holds against the slowest consumer: the stream cannot run ahead of it by more
// than the queue (plus one chunk).
TEST(PumpStream, StreamWaitsForTheSlowestConsumer) {
  constexpr size_t kChunk = 1000, kQueue = 10000;
  std::atomic<uint64_t> sent{0}, slow_done{0};
  std::atomic<uint64_t> max_ahead{0};
  SnapshotStream stream = [&](const BlobSink& sink) {
    std::string chunk(kChunk, 'x');
    for (int i = 0; i < 300; i++) {
      sink(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
      sent += kChunk;
      uint64_t ahead = sent.load() - slow_done.load();
      if (ahead > max_ahead.load()) max_ahead = ahead;
    }
  };
  PumpStream(stream,
             {StreamConsumer{[](const uint8_t*, size_t) {}, {}},
              StreamConsumer{[&](const uint8_t*, size_t n) {
                               std::this_thread::sleep_for(std::chrono::microseconds(200));
                               slow_done += n;
                             },
                             {}}},
             kQueue);
  EXPECT_EQ(slow_done, 300 * kChunk);
  // Queued (<= kQueue) + the one the slow consumer holds + the one being pushed.
  EXPECT_LE(max_ahead, kQueue + 2 * kChunk);
}

// A failing consumer stops the stream and the other consumers; no finish runs; its error
// is the one reported.
TEST(PumpStream, ConsumerErrorStopsEverySide) {
  std::atomic<uint64_t> sent{0};
  std::atomic<bool> finished{false};
  SnapshotStream endless = [&](const BlobSink& sink) {
    std::string chunk(4096, 'y');
    for (;;) {
      sink(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
      sent += chunk.size();
    }
  };
  uint64_t seen = 0;
  try {
    PumpStream(endless,
               {StreamConsumer{[&](const uint8_t*, size_t n) {
                                 seen += n;
                                 if (seen > (1 << 20)) throw Error(ErrorCode::kIo, "disk full");
                               },
                               [&] { finished = true; }},
                StreamConsumer{[](const uint8_t*, size_t) {}, [&] { finished = true; }}},
               64 << 10);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_STREQ(e.what(), "disk full");
  }
  EXPECT_FALSE(finished);
}

// A stream error is reported as is; consumers stop without running finish.
TEST(PumpStream, StreamErrorSkipsFinish) {
  std::atomic<bool> finished{false};
  std::string src(100000, 'z');
  SnapshotStream failing = [&](const BlobSink& sink) {
    StreamOf(src, 1000)(sink);
    throw Error(ErrorCode::kUnavailable, "connection reset");
  };
  try {
    PumpStream(failing, {StreamConsumer{[](const uint8_t*, size_t) {}, [&] { finished = true; }}}, 4096);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  EXPECT_FALSE(finished);
}

// With a spill, the stream never waits for a slow consumer: what the queue has no room for
// waits on disk, and every consumer still sees every byte in order. The stream ends long
// before the slow consumer does.
TEST(PumpStream, SpillKeepsTheStreamGoingPastASlowConsumer) {
  testutil::TempDir dir;
  std::string src(6 << 20, '\0');
  for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<char>(i * 2654435761u >> 13);
  std::atomic<uint64_t> slow_done{0};
  uint64_t slow_done_at_stream_end = 0;
  SnapshotStream stream = [&](const BlobSink& sink) {
    StreamOf(src, 32768)(sink);
    slow_done_at_stream_end = slow_done.load();
  };
  std::string fast, slow;
  SpillFifo spill(dir.path(), uint64_t{1} << 30);
  PumpStream(stream,
             {StreamConsumer{[&](const uint8_t* p, size_t n) { fast.append(reinterpret_cast<const char*>(p), n); }, {}},
              StreamConsumer{[&](const uint8_t* p, size_t n) {
                               std::this_thread::sleep_for(std::chrono::milliseconds(20));
                               slow.append(reinterpret_cast<const char*>(p), n);
                               slow_done += n;
                             },
                             {}}},
             256 << 10, &spill);
  EXPECT_EQ(fast, src);
  EXPECT_EQ(slow, src);
  EXPECT_LT(slow_done_at_stream_end, src.size() / 2);
  EXPECT_GT(spill.total_bytes(), src.size() / 2);
  EXPECT_GT(spill.peak_bytes(), 0u);
  EXPECT_LE(spill.peak_bytes(), spill.total_bytes());
  EXPECT_TRUE(spill.empty());
  EXPECT_EQ(spill.error(), "");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// Past the spill's bound (or without a usable directory) the stream waits for the slow
// consumer as without a spill, and nothing is lost or reordered.
TEST(PumpStream, SpillBoundAndUnusableDirFallBackToWaiting) {
  testutil::TempDir dir;
  std::string src(3 << 20, '\0');
  for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<char>(i * 40503u >> 7);
  const std::pair<std::string, uint64_t> spills[] = {{dir.path(), 512 << 10}, {dir.Sub("missing"), 1 << 30}};
  for (const auto& [spill_dir, spill_max] : spills) {
    SpillFifo spill(spill_dir, spill_max);
    std::atomic<uint64_t> sent{0}, slow_done{0}, max_ahead{0};
    SnapshotStream stream = [&](const BlobSink& sink) {
      StreamOf(src, 16384)([&](const uint8_t* p, size_t n) {
        sink(p, n);
        sent += n;
        max_ahead = std::max<uint64_t>(max_ahead.load(), sent.load() - slow_done.load());
      });
    };
    std::string out;
    PumpStream(stream,
               {StreamConsumer{[&](const uint8_t* p, size_t n) {
                                 std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                 out.append(reinterpret_cast<const char*>(p), n);
                                 slow_done += n;
                               },
                               {}}},
               128 << 10, &spill);
    EXPECT_EQ(out, src) << spill_dir;
    // queue + spill bound + the batch in hand (a quarter of the queue) + the one in the stream
    EXPECT_LE(max_ahead.load(), (128u << 10) + spill_max + (32u << 10) + 16384) << spill_dir;
    if (spill_max == (512 << 10)) {
      EXPECT_GT(spill.total_bytes(), 0u);
      EXPECT_LE(spill.peak_bytes(), 512u << 10);
      EXPECT_EQ(spill.error(), "");
    } else {
      EXPECT_EQ(spill.total_bytes(), 0u);
      EXPECT_NE(spill.error().find("create a temporary file"), std::string::npos) << spill.error();
    }
  }
}

// A consumer that fails while the stream is spilling stops the stream soon, not at its end.
TEST(PumpStream, ConsumerErrorStopsASpillingStream) {
  testutil::TempDir dir;
  std::atomic<uint64_t> sent{0};
  SnapshotStream endless = [&](const BlobSink& sink) {
    std::string chunk(32768, 'y');
    for (;;) {
      sink(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
      sent += chunk.size();
    }
  };
  SpillFifo spill(dir.path(), uint64_t{1} << 30);
  uint64_t seen = 0;
  try {
    PumpStream(endless,
               {StreamConsumer{[&](const uint8_t*, size_t n) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(5));
                 seen += n;
                 if (seen > (2 << 20)) throw Error(ErrorCode::kIo, "upload failed");
               },
                               {}}},
               256 << 10, &spill);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "upload failed");
  }
  EXPECT_LT(sent.load(), uint64_t{1} << 30);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Trailer, VerifierMatchesFileTrailer) {
  std::string src = testutil::ReadFile(kSmall);
  TrailerVerifier v;
  v.Update(reinterpret_cast<const uint8_t*>(src.data()), src.size());
  TrailerVerifier::Result r = v.Finish();
  EXPECT_TRUE(r.has_trailer);
  EXPECT_TRUE(r.matches);
  EXPECT_EQ(r.db_size, 20480u);
  EXPECT_EQ(GoByteSlice(Sha256Digest{}).substr(0, 6), "[0 0 0");
}

}  // namespace
}  // namespace etcdsafe::snapshot
