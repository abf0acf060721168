// bbolt on-disk format constants (bbolt 1.3.x, as used by etcd 3.4/3.5).
//
// All bbolt integers are host-order, i.e. little-endian on every platform etcdsafe
// supports (see base/bytes.h). The layout is described in
// docs/spec etcd-snapshot-formats.md §3. Pure constants: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace etcdsafe::bolt {

using Pgid = uint64_t;

inline constexpr uint32_t kPageSize = 4096;  // the only page size we write or accept
inline constexpr uint32_t kMagic = 0xED0CDAED;
inline constexpr uint32_t kVersion = 2;
// meta.freelist value meaning "no freelist stored; rebuild it by scanning the trees".
inline constexpr Pgid kPgidNoFreelist = ~Pgid{0};

// Page header: id u64, flags u16, count u16, overflow u32.
inline constexpr size_t kPageHeaderSize = 16;
inline constexpr size_t kPageIdOffset = 0;
inline constexpr size_t kPageFlagsOffset = 8;
inline constexpr size_t kPageCountOffset = 10;
inline constexpr size_t kPageOverflowOffset = 12;

// Page flags.
inline constexpr uint16_t kBranchPageFlag = 0x01;
inline constexpr uint16_t kLeafPageFlag = 0x02;
inline constexpr uint16_t kMetaPageFlag = 0x04;
inline constexpr uint16_t kFreelistPageFlag = 0x10;

// Leaf element flag: the value is a bucket header (+ inline page image when root == 0).
inline constexpr uint32_t kBucketLeafFlag = 0x01;

// Elements: leaf = flags u32, pos u32, ksize u32, vsize u32;
//           branch = pos u32, ksize u32, pgid u64. pos is relative to the element.
inline constexpr size_t kLeafElementSize = 16;
inline constexpr size_t kBranchElementSize = 16;

// Bucket header: root pgid u64 (0 = inline), sequence u64.
inline constexpr size_t kBucketHeaderSize = 16;

// Meta body offsets within page 0/1.
inline constexpr size_t kMetaMagicOffset = 16;
inline constexpr size_t kMetaVersionOffset = 20;
inline constexpr size_t kMetaPageSizeOffset = 24;
inline constexpr size_t kMetaFlagsOffset = 28;
inline constexpr size_t kMetaRootOffset = 32;
inline constexpr size_t kMetaSequenceOffset = 40;
inline constexpr size_t kMetaFreelistOffset = 48;
inline constexpr size_t kMetaPgidOffset = 56;
inline constexpr size_t kMetaTxidOffset = 64;
inline constexpr size_t kMetaChecksumOffset = 72;  // FNV-1a 64 over bytes [16, 72)
inline constexpr size_t kMetaEnd = 80;

// Limits bbolt enforces on Put; u16 count with 0xFFFF reserved.
inline constexpr size_t kMaxKeySize = 32768;
inline constexpr size_t kMaxValueSize = (size_t{1} << 31) - 2;
inline constexpr size_t kMaxElementsPerPage = 65534;
// bbolt stores a bucket inline when 16 + sum(16 + k + v) <= pageSize/4.
inline constexpr size_t kInlineBucketMaxSize = kPageSize / 4;

}  // namespace etcdsafe::bolt
