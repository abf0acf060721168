// Fuzz target for the PKI archive reader (controlplane/pki_archive.h): arbitrary bytes as
// the tar a PKI backup holds once decrypted and decompressed (hostile input: anyone who
// can write the repository can write it). Only etcdsafe::Error may escape ReadTar and
// CheckPkiArchive. Invariants checked (abort otherwise):
//  - every accepted entry obeys the documented rules: a name under "kubernetes" or
//    "root/", no empty, "." or ".." component, no duplicates, no entry below a symlink
//    entry, a relative symlink target, mode within 07777, a file within 16 MiB, at most
//    10,000 entries;
//  - an accepted archive written again by WriteTar reads back to the same entries
//    (path, type, mode, owner, names, mtime, content), and writing those again gives the
//    same bytes (the writer is a function of the entries alone);
//  - CheckPkiArchive accepts it with the manifest's total_keys equal to the entry count
//    and refuses it (kDataLoss) with any other count.
// Seeds in corpus/pki_archive/: writer_small and writer_kubeadm_tree are data objects
// written by `etcdsafe pki backup --allow-unencrypted --compression none` when it used
// libarchive's pax writer (etcdsafe <= 0.2; they must stay readable), writer_pax_shapes is
// the own writer's output (long, prefix-split and UTF-8 names, long link targets, big
// owners, negative and nanosecond mtimes), pax_records_ok a hand-made pax with every
// applied and ignored key, plus plain ustar/GNU tars and small hostile tars.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "backup/manifest.h"
#include "base/error.h"
#include "controlplane/pki_archive.h"

namespace {

using etcdsafe::controlplane::ArchiveEntry;

bool SameEntry(const ArchiveEntry& a, const ArchiveEntry& b) {
  return a.path == b.path && a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.uname == b.uname && a.gname == b.gname && a.mtime_sec == b.mtime_sec && a.mtime_nsec == b.mtime_nsec &&
         a.data == b.data;
}

void CheckRules(const std::vector<ArchiveEntry>& entries) {
  if (entries.size() > 10000) std::abort();
  std::set<std::string> names, links;
  for (const auto& e : entries) {
    const std::string& p = e.path;
    if (p != "kubernetes" && p.rfind("kubernetes/", 0) != 0 && p.rfind("root/", 0) != 0) std::abort();
    size_t start = 0;
    for (;;) {
      size_t slash = p.find('/', start);
      std::string part = p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (part.empty() || part == "." || part == "..") std::abort();
      // No entry below a symlink entry (its parents are checked in order of appearance too).
      if (slash != std::string::npos && links.count(p.substr(0, slash))) std::abort();
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (!names.insert(p).second) std::abort();
    if (e.mode & ~07777u) std::abort();
    if (e.type == ArchiveEntry::Type::kFile && e.data.size() > (size_t{16} << 20)) std::abort();
    if (e.type == ArchiveEntry::Type::kSymlink) {
      if (e.data.empty() || e.data.front() == '/') std::abort();
      links.insert(p);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcdsafe;
  using namespace etcdsafe::controlplane;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<ArchiveEntry> entries;
  try {
    entries = ReadTar(input, "fuzz");
  } catch (const Error&) {
    return 0;
  }
  CheckRules(entries);
  for (const auto& e : entries) (void)HoldsPrivateKey(e);
  // Round trip through the writer.
  std::vector<ArchiveEntry> again;
  const std::string written = WriteTar(entries);
  try {
    again = ReadTar(written, "fuzz-again");
  } catch (const Error&) {
    std::abort();  // what the reader accepted, the writer must write readably
  }
  if (WriteTar(again) != written) std::abort();
  if (again.size() != entries.size()) std::abort();
  for (size_t i = 0; i < entries.size(); i++) {
    if (!SameEntry(entries[i], again[i])) std::abort();
  }
  // The verify check against a manifest.
  backup::Manifest m;
  m.kind = "pki";
  m.total_keys = entries.size();
  try {
    CheckPkiArchive(m, input);
  } catch (const Error&) {
    std::abort();
  }
  m.total_keys = entries.size() + 1;
  try {
    CheckPkiArchive(m, input);
    std::abort();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kDataLoss) std::abort();
  }
  return 0;
}
