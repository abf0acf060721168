// Restore-time cluster membership, computed exactly like `etcdctl snapshot restore`
// (3.4.23): flag parsing and validation (VerifyBootstrap), member and cluster IDs, and the
// member JSON that goes into the raft ConfChange context.
//
// Contract: BuildRestoreCluster either returns a fully validated cluster or throws
// Error(kInvalidArgument, msg) where msg is the text etcdctl prints after "Error: ".
// Nothing here touches the filesystem.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "etcdfmt/goformat.h"

namespace etcdsafe::etcdfmt {

struct Member {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;  // Go url.String() forms, sorted as strings
};

struct RestoreCluster {
  std::vector<Member> members;  // ascending numeric id: raft entry, voter and vote order
  uint64_t cluster_id = 0;
  uint64_t local_id = 0;
  std::string local_name;
};

// Defaults of etcdctl 3.4.23's flags.
inline constexpr std::string_view kDefaultName = "default";
inline constexpr std::string_view kDefaultInitialCluster = "default=http://localhost:2380";
inline constexpr std::string_view kDefaultToken = "etcd-cluster";
inline constexpr std::string_view kDefaultAdvertisePeerUrls = "http://localhost:2380";

// Parses --initial-advertise-peer-urls (split on ','), --initial-cluster, validates like
// etcd's VerifyBootstrap and computes the IDs. DNS names are never resolved: the
// advertise URLs must equal the local member's URLs as strings (etcd would try DNS when
// they differ and could accept e.g. a hostname vs its IP).
RestoreCluster BuildRestoreCluster(const std::string& name, const std::string& initial_cluster,
                                   const std::string& token,
                                   const std::string& initial_advertise_peer_urls);

// SHA-1 of the sorted URLs concatenated plus the token; first 8 bytes big-endian.
uint64_t MemberId(const std::vector<std::string>& sorted_urls, std::string_view token);
// SHA-1 of the ids sorted ascending as 8-byte big-endian each; first 8 bytes big-endian.
uint64_t ClusterId(std::vector<uint64_t> ids);

// Go json.Marshal of membership.Member as restore creates it:
// {"id":<decimal>,"peerURLs":[...],"name":"..."} (name omitted when empty).
std::string MemberJson(const Member& m);
// {"peerURLs":[...]}: the v2 store raftAttributes value (isLearner false is omitted).
std::string RaftAttributesJson(const Member& m);

}  // namespace etcdsafe::etcdfmt
