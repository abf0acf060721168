#include "etcdfmt/snap.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "base/checksum.h"
#include "base/error.h"
#include "base/file.h"
#include "etcdfmt/v2store.h"

namespace etcdsafe::etcdfmt {
namespace {

// The process umask without changing it (umask(2) can only set it, which would race
// with other threads creating files): Linux reports it in /proc/self/status.
mode_t CurrentUmask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  mode_t mask = ::umask(0);  // old kernels: brief set-and-restore
  ::umask(mask);
  return mask;
}

}  // namespace

std::string SnapFileName(uint64_t term, uint64_t index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016llx-%016llx.snap", static_cast<unsigned long long>(term),
                static_cast<unsigned long long>(index));
  return buf;
}

Snapshot RestoreSnapshot(const RestoreCluster& cluster, uint64_t term) {
  Snapshot s;
  s.data = RestoreV2StoreJson(cluster);
  for (const auto& m : cluster.members) s.metadata.conf_state.voters.push_back(m.id);
  s.metadata.index = cluster.members.size();
  s.metadata.term = term;
  return s;
}

std::string EncodeSnapFile(const Snapshot& snapshot) {
  std::string data = Encode(snapshot);
  return EncodeSnappb(Crc32c(AsBytes(data)), AsBytes(data));
}

std::string WriteRestoreSnap(const std::string& snap_dir, const RestoreCluster& cluster) {
  Snapshot s = RestoreSnapshot(cluster, 1);
  std::string bytes = EncodeSnapFile(s);
  std::string final_path = snap_dir + "/" + SnapFileName(s.metadata.term, s.metadata.index);
  std::string tmp = final_path + ".part";
  // etcd creates the file with 0666 and lets the umask narrow it.
  mode_t mask = CurrentUmask();
  CleanupGuard guard(tmp);
  {
    File f = File::Create(tmp, 0666 & ~mask, /*truncate=*/true);
    f.WriteAll(AsBytes(bytes));
    f.Sync();
    f.Close();
  }
  RenameDurable(tmp, final_path);
  guard.Release();
  return final_path;
}

Snapshot DecodeSnapFile(Bytes data, const std::string& what) {
  if (data.empty()) throw Error(ErrorCode::kDataLoss, what + ": empty snapshot file");
  Snappb pb;
  try {
    pb = DecodeSnappb(data);
  } catch (const Error& e) {
    throw Error(ErrorCode::kDataLoss, what + ": " + e.what());
  }
  if (!pb.crc || *pb.crc == 0 || !pb.data || pb.data->empty()) {
    throw Error(ErrorCode::kDataLoss, what + ": empty snapshot (no crc or no data)");
  }
  uint32_t crc = Crc32c(AsBytes(*pb.data));
  if (crc != *pb.crc) {
    throw Error(ErrorCode::kDataLoss, what + ": crc mismatch: file says " + HexNoPad(*pb.crc) +
                                          ", data has " + HexNoPad(crc));
  }
  try {
    return DecodeSnapshot(AsBytes(*pb.data));
  } catch (const Error& e) {
    throw Error(ErrorCode::kDataLoss, what + ": " + e.what());
  }
}

Snapshot ReadSnapFile(const std::string& path) {
  File f = File::OpenRead(path);
  std::vector<uint8_t> buf(static_cast<size_t>(f.Size()));
  if (!buf.empty()) f.ReadAt(0, buf.data(), buf.size());
  return DecodeSnapFile(Bytes(buf.data(), buf.size()), path);
}

}  // namespace etcdsafe::etcdfmt
