// The v2 store JSON that `etcdctl snapshot restore` (3.4.23) puts in the .snap file: Go
// json.Marshal of the in-memory v2 store after adding one raftAttributes node per member.
// etcd rebuilds the cluster membership from it at startup, so the bytes must match
// etcdctl's exactly (spec §7.3).
#pragma once

#include <string>

#include "etcdfmt/membership.h"

namespace etcdsafe::etcdfmt {

std::string RestoreV2StoreJson(const RestoreCluster& cluster);

}  // namespace etcdsafe::etcdfmt
