// Streaming compression stages: zstd (default) and gzip (for tools that only know gzip).
//
// NewCompressSink compresses everything written and forwards compressed bytes to `next`;
// Close() finishes the frame and closes `next`. NewDecompressSource pulls compressed
// bytes from `in` and returns plain bytes. Output is standard: zstd frames readable by
// `zstd -d` (with a content checksum), gzip members readable by `gzip -d`; the sources
// read what those tools write, including concatenated frames/members.
// Decompression is strict: corrupt input, a truncated or empty stream, and trailing
// bytes that are not another frame/member are Error(kDataLoss). Memory is bounded by the
// codec window (zstd frames needing a window over 16 MiB are refused), never by size.
// Not thread-safe; with zstd workers > 0 libzstd runs its own threads internally.
#pragma once

#include <memory>
#include <string_view>

#include "base/stream.h"

namespace etcdsafe::pipeline {

enum class Compression { kNone, kZstd, kGzip };

// "none" | "zstd" | "gzip"; anything else is kInvalidArgument.
Compression ParseCompression(std::string_view name);
std::string_view CompressionName(Compression c);

struct CompressOptions {
  // 0 = default (zstd 1, gzip 6). zstd accepts 1..19, gzip 1..9, none only 0;
  // out of range is kInvalidArgument.
  int level = 0;
  // zstd only: libzstd worker threads (ZSTD_c_nbWorkers). 1 lets compression run on a
  // second core while the caller receives and encrypts; 0 compresses in the caller.
  int zstd_workers = 1;
  // zstd only: long-distance matching over an 8 MiB window (a restore accepts up to 16).
  // etcd keeps many revisions of similar objects far apart in the db; measured on
  // Kubernetes-shaped JSON it shrinks zstd-3 output by ~22% for ~2x the CPU, which a
  // compression thread running beside the network receive absorbs.
  bool zstd_long = true;
};

std::unique_ptr<Sink> NewCompressSink(Compression c, const CompressOptions& opts, Sink& next);
inline std::unique_ptr<Sink> NewCompressSink(Compression c, int level, Sink& next) {
  CompressOptions opts;
  opts.level = level;
  return NewCompressSink(c, opts, next);
}

std::unique_ptr<Source> NewDecompressSource(Compression c, Source& in);

// Guesses the compression of a stream from its first bytes (zstd frame magic, including
// skippable frames, or gzip's 1f 8b 08); kNone when neither matches. For restoring
// objects that have no manifest; an encrypted archive must be decrypted first.
Compression SniffCompression(Bytes prefix);

}  // namespace etcdsafe::pipeline
