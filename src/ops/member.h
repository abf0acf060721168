// `etcdsafe member list | add | remove | update | promote`: etcdctl 3.4's commands with
// the same arguments, output and exit codes.
//
// Contract:
//  * Arguments are checked before anything is dialled, with etcdctl's texts and exit 128
//    (kInvalidArgument): "member ID is not provided", "bad member ID arg (strconv.ParseUint:
//    parsing "zz": invalid syntax), expecting ID in Hex", "member name not provided",
//    "too many arguments[, did you mean --peer-urls=URL]", "member peer urls not
//    provided". Peer URLs are checked as etcd's types.NewURLs does (scheme http, https,
//    unix or unixs; "host:port"; no path) with etcd's texts, exit 1 (as etcdctl, whose
//    client library refuses them).
//  * The output format is checked before any change: -w table/fields for add, remove,
//    update and promote are etcdctl's "<w> not supported as output format" (exit 4);
//    etcdctl refuses them only after the change is made, we refuse before.
//  * Anything etcd refuses ("etcdserver: member not found", "etcdserver: re-configuration
//    failed due to not enough started members" for the last voting member, "etcdserver:
//    Peer URLs already exists", "etcdserver: unhealthy cluster", a learner not in sync) is
//    exit 1 with etcd's text, as etcdctl; nothing changed. No endpoint
//    reachable is kUnavailable (exit 2); authentication failures keep exit 12.
//  * `member add` in simple format prints etcdctl 3.4's line ("Member <id> added to
//    cluster <id>", for a learner too), a blank line and the four
//    ETCD_* lines; the member list they are built from is re-read until it comes from the
//    member that answered the add (etcdctl's loop), so ETCD_INITIAL_CLUSTER is complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/etcd_client.h"
#include "ops/endpoint.h"

namespace etcdsafe::ops {

// etcdctl's hex member ID argument ("member ID is not provided" / "bad member ID arg ...").
uint64_t ParseMemberId(const std::vector<std::string>& args);
// etcd's types.NewURLs checks; returns the reason or "".
std::string CheckPeerUrls(const std::vector<std::string>& urls);
// "a,b" -> {"a","b"} as Go's strings.Split (spaces kept; etcd trims them).
std::vector<std::string> SplitUrls(const std::string& s);

CommandOutput MemberList(const client::ClientConfig& config, const std::string& write_out);
CommandOutput MemberAdd(const client::ClientConfig& config, const std::vector<std::string>& args,
                        const std::string& peer_urls, bool learner, const std::string& write_out);
CommandOutput MemberRemove(const client::ClientConfig& config, const std::vector<std::string>& args,
                           const std::string& write_out);
CommandOutput MemberUpdate(const client::ClientConfig& config, const std::vector<std::string>& args,
                           const std::string& peer_urls, const std::string& write_out);
CommandOutput MemberPromote(const client::ClientConfig& config, const std::vector<std::string>& args,
                            const std::string& write_out);

}  // namespace etcdsafe::ops
