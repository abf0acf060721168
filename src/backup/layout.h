// The names etcdsafe writes in a repository, and nothing else.
//
// Every command that acts on a repository's objects first classifies their names with
// ClassifyName; an object whose name is not exactly one etcdsafe writes is foreign and is
// never read, changed or deleted (docs/design.md, "Repository invariants"). Names live at
// the repository's top level only (plus "locks/", see lock.h); sub-prefixes are never
// looked into, since they may hold another repository or anyone's files.
//
//   etcdsafe-repository.json                 the marker: this location is a repository
//   <stem><ext>                              data object
//   <stem><ext>.sha256                       its sidecar, for sha256sum -c
//   <stem><ext>.pending                      intent record: written before the data object,
//                                            removed after the manifest; proves which
//                                            leftovers a killed backup wrote
//   <stem>-r<revision>.manifest.json         the manifest (commit point); its id is the
//                                            file name without ".manifest.json"
//   <any of the above>.tmp-<16 hex>          the file store's uncommitted temporaries
// with <stem> = <prefix>-<YYYYMMDD>-<HHMMSS>[-<N>] (UTC), <prefix> = [a-z0-9][a-z0-9._-]*
// up to 64 characters, <ext> = ".db" [".zst" | ".gz"] [".enc"] for etcd snapshot backups
// and ".tar" [".zst" | ".gz"] [".enc"] for PKI backups (`pki backup`, stem
// "pki-<host>-..."; their manifest says "kind": "pki" and their id is "<stem>-r0").
//   <id>.seg-<seq>-<first>-<last>.evt[.zst|.gz][.enc]
//                                            a segment of continuous backup (follow/segment.h):
//                                            the events of revisions first..last, number seq
//                                            (1, 2, ...; zero-padded to 6 digits) of the chain
//                                            that continues backup <id> = "<stem>-r<revision>".
//                                            Committed by the store's atomic put; no manifest,
//                                            sidecar or intent record (the segment carries its
//                                            own header and hashes).
//   <id>.seg-<seq>_<seq_last>-<first>-<last>.evt[.zst|.gz][.enc]
//                                            a MERGED segment (background compaction,
//                                            follow/compact.h): it replaces segments
//                                            seq..seq_last (seq < seq_last, both written
//                                            like seq) of the chain and holds their records.
//                                            While a merge is being committed, the merged
//                                            object and some of the originals it replaces
//                                            exist together: SegmentCovers says which.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace etcdsafe::backup {

inline constexpr char kMarkerName[] = "etcdsafe-repository.json";
inline constexpr char kManifestSuffix[] = ".manifest.json";
inline constexpr char kSidecarSuffix[] = ".sha256";
inline constexpr char kPendingSuffix[] = ".pending";

// What a backup holds (the manifest's "kind"; absent means kSnapshot). Each kind has its
// own data extension, and commands that restore etcd only ever use kSnapshot backups.
enum class BackupKind { kSnapshot, kPki };
std::string_view BackupKindName(BackupKind kind);  // "snapshot" | "pki"

enum class NameKind { kForeign, kMarker, kData, kSidecar, kPending, kManifest, kTemp, kSegment };

struct ParsedName {
  NameKind kind = NameKind::kForeign;
  std::string stem;          // kData/kSidecar/kPending/kManifest; for kTemp: of the base name
  std::string ext;           // kData/kSidecar/kPending: ".db.zst.enc" etc.
  int64_t time_unix = 0;     // from the stem's UTC date and time
  int64_t revision = 0;      // kManifest; kSegment: the chain's base revision
  // kSegment: chain id = stem + "-r" + revision, and the segment's place in it: numbers
  // seq..seq_last (seq_last == seq for a plain segment, > seq for a merged one).
  uint64_t seq = 0, seq_last = 0;
  int64_t first_revision = 0, last_revision = 0;
  std::string base;          // kTemp: the name the temporary would have been committed as
  NameKind base_kind = NameKind::kForeign;  // kTemp: kind of `base`
};

// Classifies a top-level object name (a name containing '/' is foreign).
ParsedName ClassifyName(std::string_view name);

// ".db" (".tar" for kPki) + ".zst"/".gz" + ".enc" for a manifest's compression/encryption
// fields; nullopt for values etcdsafe does not write.
std::optional<std::string> DataExtension(std::string_view compression, std::string_view encryption,
                                         BackupKind kind = BackupKind::kSnapshot);

// A segment's object name (layout above); `chain` must be a backup id, seq >= 1,
// first >= 1, last >= first - 1, ext one of SegmentExtension's.
std::string SegmentObjectName(std::string_view chain, uint64_t seq, int64_t first, int64_t last,
                              std::string_view ext);
// A merged segment's name (seq < seq_last), or the plain name when seq_last == seq.
std::string MergedSegmentObjectName(std::string_view chain, uint64_t seq, uint64_t seq_last, int64_t first,
                                    int64_t last, std::string_view ext);

// From names alone: true when `merged` (a kSegment of numbers seq..seq_last, seq_last >
// seq) replaces `other`, a different kSegment of the same chain: other's numbers lie
// within merged's, and so do its revisions (starting with merged's first revision when
// it starts at merged's number, ending with merged's last when it ends at merged's last
// number). Any other overlap of two segments of one chain is a problem, not a merge.
bool SegmentCovers(const ParsedName& merged, const ParsedName& other);

// The segments of ONE chain (kSegment names of one base, in any order), from names alone:
// for each, the index of the merged segment that supersedes it, or nullopt. Walked in
// chain order (ascending seq, the widest first at one number), a merged segment replaces
// what it covers (SegmentCovers) only when it starts exactly where the chain before it
// ends (its seq and first revision follow the last segment kept, or the base: revision
// max(base revision, 1) + 1 for number 1), so a merged segment out of place never hides
// a segment: that is a problem for the chain's reader, not a merge.
std::vector<std::optional<size_t>> SupersededSegments(const std::vector<ParsedName>& segments);
// ".evt" + ".zst"/".gz" + ".enc" for a compression name ("none" | "zstd" | "gzip").
std::optional<std::string> SegmentExtension(std::string_view compression, bool encrypted);

// True for a valid backup id: "<stem>-r<revision>".
bool IsBackupId(std::string_view id);

// Makes untrusted text safe to print on one terminal line: control characters, DEL,
// backslash and bytes that are not UTF-8 become \xNN escapes.
std::string EscapeForTerminal(std::string_view s);

}  // namespace etcdsafe::backup
