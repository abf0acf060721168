#include "snapshot/inspect.h"

#include <future>
#include <vector>

#include "base/bytes.h"
#include "base/error.h"
#include "base/file.h"
#include "bolt/inspect.h"
#include "snapshot/trailer.h"

namespace etcdsafe::snapshot {

namespace {

// threads: 0 = all cores; 1 when another thread is busy hashing beside this one.
FileStatus ReadStatusImpl(const std::string& path, const BytePatch* patch, size_t threads) {
  bolt::Reader reader = bolt::Reader::Open(path);
  bolt::InspectOptions opts;
  opts.threads = threads;
  if (patch != nullptr) reader.source().SetPatch(patch->offset, patch->bytes);
  bolt::InspectResult in = bolt::Inspect(reader, opts);
  FileStatus st;
  st.numbers = CheckedNumbers(in);
  st.file_size = File::OpenRead(path).Size();
  st.has_trailer = HasTrailer(st.file_size) && st.file_size >= st.numbers.total_size + kTrailerSize;
  return st;
}

}  // namespace

StatusNumbers CheckedNumbers(const bolt::InspectResult& in) {
  if (!in.problems.empty()) {
    std::string msg = "snapshot file integrity check failed. " + std::to_string(in.problems.size()) +
                      " errors found: ";
    for (size_t i = 0; i < in.problems.size(); i++) {
      if (i > 0) msg += "; ";
      if (i == 10) {
        msg += "... (" + std::to_string(in.problems.size() - 10) + " more)";
        break;
      }
      msg += in.problems[i];
    }
    throw Error(ErrorCode::kDataLoss, msg);
  }
  return StatusNumbers{in.status.hash, in.status.revision, static_cast<uint64_t>(in.status.total_key),
                       static_cast<uint64_t>(in.status.total_size)};
}

FileStatus ReadStatus(const std::string& path) { return ReadStatusImpl(path, nullptr, 0); }

FileStatus ReadStatus(const std::string& path, const BytePatch& patch) {
  // Restore runs this beside its copy, which keeps a core busy hashing.
  return ReadStatusImpl(path, &patch, 1);
}

Sha256Digest HashFilePrefix(const std::string& path, uint64_t length,
                            const std::function<void(uint64_t)>& progress) {
  File f = File::OpenRead(path);
  Sha256 sha;
  std::vector<uint8_t> buf(4 << 20);
  uint64_t done = 0;
  while (done < length) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    f.ReadAt(done, buf.data(), n);
    sha.Update(buf.data(), n);
    done += n;
    if (progress) progress(done);
  }
  return sha.Finish();
}

VerifyResult VerifySnapshotFile(const std::string& path, const std::function<void(uint64_t)>& progress) {
  VerifyResult r;
  const uint64_t file_size = File::OpenRead(path).Size();
  // The sha256 (one core) runs beside the structural check; the check's errors come first.
  std::future<Sha256Digest> hash;
  if (HasTrailer(file_size)) {
    hash = std::async(std::launch::async, [&] { return HashFilePrefix(path, file_size - kTrailerSize, progress); });
  }
  try {
    r.status = ReadStatusImpl(path, nullptr, /*threads=*/1);
  } catch (...) {
    if (hash.valid()) hash.wait();
    throw;
  }
  if (!r.status.has_trailer) {
    throw Error(ErrorCode::kDataLoss, path + ": no sha256 trailer (size " +
                                          std::to_string(r.status.file_size) +
                                          " is not a whole snapshot plus 32 bytes)");
  }
  uint64_t db_size = r.status.file_size - kTrailerSize;
  r.db_sha256 = hash.valid() ? hash.get() : HashFilePrefix(path, db_size, progress);
  Sha256Digest trailer{};
  File::OpenRead(path).ReadAt(db_size, trailer.data(), kTrailerSize);
  if (trailer != r.db_sha256) {
    throw Error(ErrorCode::kDataLoss, path + ": sha256 mismatch: trailer says " + HexBytes(trailer) +
                                          ", db hashes to " + HexBytes(r.db_sha256));
  }
  return r;
}

}  // namespace etcdsafe::snapshot
