#include "pipeline/compress.h"

#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <climits>
#include <string>
#include <vector>

#include "base/error.h"

namespace etcdsafe::pipeline {
namespace {

// Largest zstd window we agree to allocate when reading: level 19 uses 2^23; 2^24 leaves
// room for other writers' settings while keeping restore memory bounded (and fuzzing sane).
constexpr int kZstdMaxWindowLog = 24;
// The long-matching window we write with: 8 MiB keeps a whole backup of a 1 GB etcd under
// 128 MiB RSS (16 MiB measured up to 131 MiB) and restores need less than they accept.
constexpr int kZstdLongWindowLog = 23;
constexpr int kZstdJobSize = 4 << 20;
// The default zstd level, and the long-matching table's bucket size (2^2 entries instead
// of libzstd's 2^3) at levels up to 3. `zstd --single-thread` on the 1.1 GB bench db, CPU
// seconds and output: level 3 long 4.2 s, 63.2 MB (the default until 2026-12); level 1
// long 3.4 s, 60.2 MB; level 1 long with 4-entry buckets 2.7 s, 61.1 MB; level 1 without
// long matching 1.3 s, 74.8 MB. Level 1 finds fewer short matches than 3, but in an etcd
// db the long matches (other revisions of the same object) are what count.
constexpr int kZstdDefaultLevel = 1;
constexpr int kZstdFastLdmBucketSizeLog = 2;

[[noreturn]] void Corrupt(const std::string& msg) { throw Error(ErrorCode::kDataLoss, msg); }

class PassSink : public Sink {
 public:
  explicit PassSink(Sink& next) : next_(next) {}
  void Write(const uint8_t* data, size_t n) override { next_.Write(data, n); }
  void Close() override { next_.Close(); }

 private:
  Sink& next_;
};

class PassSource : public Source {
 public:
  explicit PassSource(Source& in) : in_(in) {}
  size_t Read(uint8_t* buf, size_t n) override { return in_.Read(buf, n); }

 private:
  Source& in_;
};

class ZstdSink : public Sink {
 public:
  ZstdSink(int level, int workers, bool long_matching, Sink& next)
      : next_(next), cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
    if (cctx_ == nullptr) throw Error(ErrorCode::kInternal, "zstd: out of memory");
    Check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level));
    Check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1));
    if (long_matching) {
      Check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_enableLongDistanceMatching, 1));
      Check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_windowLog, kZstdLongWindowLog));
      if (level <= 3) Check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_ldmBucketSizeLog, kZstdFastLdmBucketSizeLog));
    }
    if (workers > 0) {
      // Fails on a libzstd built without threads; compressing in the caller is still correct.
      (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, workers);
      // Default jobs are 4x the window (8 MiB at level 3) and cost ~40 MiB of buffers;
      // 4 MiB jobs measured the same ratio on an etcd db at about half the memory.
      (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_jobSize, kZstdJobSize);
    }
  }
  ~ZstdSink() override { ZSTD_freeCCtx(cctx_); }
  ZstdSink(const ZstdSink&) = delete;
  ZstdSink& operator=(const ZstdSink&) = delete;

  void Write(const uint8_t* data, size_t n) override {
    if (closed_) throw Error(ErrorCode::kInternal, "zstd: write after close");
    ZSTD_inBuffer in{data, n, 0};
    while (in.pos < in.size) Step(&in, ZSTD_e_continue);
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    ZSTD_inBuffer in{nullptr, 0, 0};
    while (Step(&in, ZSTD_e_end) != 0) {
    }
    next_.Close();
  }

 private:
  size_t Step(ZSTD_inBuffer* in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t r = ZSTD_compressStream2(cctx_, &out, in, mode);
    Check(r);
    if (out.pos > 0) next_.Write(out_.data(), out.pos);
    return r;
  }
  static void Check(size_t r) {
    if (ZSTD_isError(r)) throw Error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(r));
  }

  Sink& next_;
  ZSTD_CCtx* cctx_;
  std::vector<uint8_t> out_;
  bool closed_ = false;
};

class ZstdSource : public Source {
 public:
  explicit ZstdSource(Source& in) : in_(in), dctx_(ZSTD_createDCtx()), buf_(ZSTD_DStreamInSize()) {
    if (dctx_ == nullptr) throw Error(ErrorCode::kInternal, "zstd: out of memory");
    ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kZstdMaxWindowLog);
  }
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }
  ZstdSource(const ZstdSource&) = delete;
  ZstdSource& operator=(const ZstdSource&) = delete;

  size_t Read(uint8_t* dst, size_t n) override {
    if (done_ || n == 0) return 0;
    for (;;) {
      if (zin_.pos == zin_.size && !eof_) {
        zin_ = {buf_.data(), in_.Read(buf_.data(), buf_.size()), 0};
        if (zin_.size == 0) eof_ = true;
      }
      ZSTD_outBuffer out{dst, n, 0};
      size_t in_before = zin_.pos;
      size_t r = ZSTD_decompressStream(dctx_, &out, &zin_);
      if (ZSTD_isError(r)) {
        if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge) {
          Corrupt("zstd: frame needs a window larger than 16 MiB; refusing to allocate it");
        }
        Corrupt(std::string("zstd: corrupt data: ") + ZSTD_getErrorName(r));
      }
      // A call without progress (e.g. after a frame ended) says nothing about frames.
      if (zin_.pos != in_before || out.pos > 0) frame_done_ = (r == 0);
      if (out.pos > 0) return out.pos;
      if (eof_ && zin_.pos == zin_.size) {
        if (!frame_done_) {
          Corrupt(any_input_ ? "zstd: truncated stream (frame incomplete)"
                             : "zstd: truncated stream (empty)");
        }
        done_ = true;
        return 0;
      }
      if (zin_.pos != in_before) any_input_ = true;
    }
  }

 private:
  Source& in_;
  ZSTD_DCtx* dctx_;
  std::vector<uint8_t> buf_;
  ZSTD_inBuffer zin_{nullptr, 0, 0};
  bool eof_ = false;
  bool done_ = false;
  bool frame_done_ = false;
  bool any_input_ = false;
};

// zlib counts in uInt; feed it at most this much per call.
constexpr size_t kZlibMaxStep = 1u << 30;

class GzipSink : public Sink {
 public:
  GzipSink(int level, Sink& next) : next_(next), out_(256 << 10) {
    // windowBits 15 + 16: a gzip wrapper (RFC 1952) instead of zlib's.
    if (deflateInit2(&zs_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw Error(ErrorCode::kInternal, "gzip: deflateInit2 failed");
    }
  }
  ~GzipSink() override { deflateEnd(&zs_); }
  GzipSink(const GzipSink&) = delete;
  GzipSink& operator=(const GzipSink&) = delete;

  void Write(const uint8_t* data, size_t n) override {
    if (closed_) throw Error(ErrorCode::kInternal, "gzip: write after close");
    while (n > 0) {
      size_t step = std::min(n, kZlibMaxStep);
      zs_.next_in = const_cast<Bytef*>(data);
      zs_.avail_in = static_cast<uInt>(step);
      do {
        Deflate(Z_NO_FLUSH);
      } while (zs_.avail_in > 0);
      data += step;
      n -= step;
    }
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    zs_.next_in = nullptr;
    zs_.avail_in = 0;
    while (Deflate(Z_FINISH) != Z_STREAM_END) {
    }
    next_.Close();
  }

 private:
  int Deflate(int flush) {
    zs_.next_out = out_.data();
    zs_.avail_out = static_cast<uInt>(out_.size());
    int r = deflate(&zs_, flush);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
      throw Error(ErrorCode::kInternal, "gzip: deflate failed: " + std::to_string(r));
    }
    size_t produced = out_.size() - zs_.avail_out;
    if (produced > 0) next_.Write(out_.data(), produced);
    return r;
  }

  Sink& next_;
  z_stream zs_{};
  std::vector<uint8_t> out_;
  bool closed_ = false;
};

class GzipSource : public Source {
 public:
  explicit GzipSource(Source& in) : in_(in), buf_(128 << 10) {
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) throw Error(ErrorCode::kInternal, "gzip: inflateInit2 failed");
  }
  ~GzipSource() override { inflateEnd(&zs_); }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  size_t Read(uint8_t* dst, size_t n) override {
    if (done_ || n == 0) return 0;
    n = std::min(n, kZlibMaxStep);
    for (;;) {
      if (zs_.avail_in == 0 && !eof_) {
        size_t got = in_.Read(buf_.data(), buf_.size());
        zs_.next_in = buf_.data();
        zs_.avail_in = static_cast<uInt>(got);
        if (got == 0) eof_ = true;
      }
      if (member_done_) {
        if (zs_.avail_in == 0) {
          if (eof_) {
            done_ = true;
            return 0;
          }
          continue;
        }
        // More bytes after a member: gzip -d reads them as another member; so do we,
        // but anything that is not a valid member is an error, not ignored.
        inflateReset(&zs_);
        member_done_ = false;
      }
      if (eof_ && zs_.avail_in == 0) {
        Corrupt(members_ == 0 && !any_input_ ? "gzip: truncated stream (empty)"
                                             : "gzip: truncated stream (member incomplete)");
      }
      any_input_ = true;
      zs_.next_out = dst;
      zs_.avail_out = static_cast<uInt>(n);
      int r = inflate(&zs_, Z_NO_FLUSH);
      if (r == Z_STREAM_END) {
        member_done_ = true;
        members_++;
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        std::string why = zs_.msg != nullptr ? zs_.msg : ("error " + std::to_string(r));
        if (members_ > 0) Corrupt("gzip: trailing garbage after member " + std::to_string(members_) + ": " + why);
        Corrupt("gzip: corrupt data: " + why);
      }
      size_t produced = n - zs_.avail_out;
      if (produced > 0) return produced;
    }
  }

 private:
  Source& in_;
  z_stream zs_{};
  std::vector<uint8_t> buf_;
  bool eof_ = false;
  bool done_ = false;
  bool member_done_ = false;
  bool any_input_ = false;
  uint64_t members_ = 0;
};

}  // namespace

Compression ParseCompression(std::string_view name) {
  if (name == "none") return Compression::kNone;
  if (name == "zstd") return Compression::kZstd;
  if (name == "gzip") return Compression::kGzip;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown compression \"" + std::string(name) + "\" (want none, zstd or gzip)");
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kZstd: return "zstd";
    case Compression::kGzip: return "gzip";
  }
  return "unknown";
}

Compression SniffCompression(Bytes p) {
  if (p.size() >= 4) {
    uint32_t magic = LoadLE32(p.data());
    if (magic == ZSTD_MAGICNUMBER || (magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
      return Compression::kZstd;
    }
  }
  if (p.size() >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08) return Compression::kGzip;
  return Compression::kNone;
}

std::unique_ptr<Sink> NewCompressSink(Compression c, const CompressOptions& opts, Sink& next) {
  int level = opts.level;
  auto bad_level = [&](std::string_view range) {
    return Error(ErrorCode::kInvalidArgument, std::string(CompressionName(c)) + " level " +
                                                  std::to_string(level) + " out of range (" +
                                                  std::string(range) + ")");
  };
  switch (c) {
    case Compression::kNone:
      if (level != 0) throw bad_level("none takes no level");
      return std::make_unique<PassSink>(next);
    case Compression::kZstd:
      if (level == 0) level = kZstdDefaultLevel;
      if (level < 1 || level > 19) throw bad_level("1..19");
      if (opts.zstd_workers < 0 || opts.zstd_workers > 64) {
        throw Error(ErrorCode::kInvalidArgument, "zstd workers out of range (0..64)");
      }
      return std::make_unique<ZstdSink>(level, opts.zstd_workers, opts.zstd_long, next);
    case Compression::kGzip:
      if (level == 0) level = 6;
      if (level < 1 || level > 9) throw bad_level("1..9");
      return std::make_unique<GzipSink>(level, next);
  }
  throw Error(ErrorCode::kInternal, "unknown compression");
}

std::unique_ptr<Source> NewDecompressSource(Compression c, Source& in) {
  switch (c) {
    case Compression::kNone: return std::make_unique<PassSource>(in);
    case Compression::kZstd: return std::make_unique<ZstdSource>(in);
    case Compression::kGzip: return std::make_unique<GzipSource>(in);
  }
  throw Error(ErrorCode::kInternal, "unknown compression");
}

}  // namespace etcdsafe::pipeline
