// `etcdsafe endpoint health | status | hashkv`: etcdctl 3.4's commands, the same columns,
// text and exit codes.
//
// Contract (each function returns what to print; the caller writes `out` to stdout and
// `err` to stderr, then exits with `exit_code` and, when `error` is not empty, a last
// "Error: <error>" line on stderr, exactly as etcdctl does):
//  * endpoints: the --endpoints list as given, or with --cluster every client URL of every
//    member from the member list (in member-list order), as etcdctl's endpointsFromCluster.
//    A failed member list is exit 1 "failed to fetch endpoints from etcd cluster member
//    list: <reason>".
//  * Health: every endpoint checked concurrently with its own connection: a linearizable
//    get of "health" (permission denied counts as healthy), then no active alarm. Lines are
//    printed in the endpoints' order (etcdctl prints them as the checks finish). Any
//    unhealthy endpoint: every line is still printed, then exit 1 "unhealthy cluster".
//    An endpoint that cannot be reached reports etcdctl's "context deadline exceeded"
//    (the specific reason is in the --debug output).
//  * Status / HashKV: endpoints queried one after the other; a failed one is reported on
//    stderr ("Failed to get the status of endpoint E (reason)" / "Failed to get the hash
//    of endpoint E (reason)") and left out of the output; then exit 1 (for hashkv with
//    "Error: <last reason>", as etcdctl).
//  * Output formats: simple, table, json, fields; anything else kUnsupported (exit 4)
//    before any connection.
#pragma once

#include <string>
#include <vector>

#include "client/etcd_client.h"

namespace etcdsafe::ops {

struct CommandOutput {
  std::string out, err;
  int exit_code = 0;
  std::string error;  // printed as "Error: <error>" last when not empty
};

// The endpoints a command works on: config.endpoints, or with `cluster` the client URLs
// of every member (throws CommandFailure-style kUnavailable / the etcd error otherwise).
std::vector<std::string> ResolveEndpoints(const client::ClientConfig& config, bool cluster,
                                          std::string* failure);

CommandOutput EndpointHealth(const client::ClientConfig& config, bool cluster,
                             const std::string& write_out);
CommandOutput EndpointStatus(const client::ClientConfig& config, bool cluster,
                             const std::string& write_out);
CommandOutput EndpointHashKV(const client::ClientConfig& config, bool cluster,
                             const std::string& write_out, int64_t revision);

// JSON of a ResponseHeader as Go's json.Marshal writes etcd's pb.ResponseHeader.
std::string HeaderJson(const client::EtcdClient::ResponseHeader& h);
// etcdctl -w fields' four header lines.
std::string HeaderFields(const client::EtcdClient::ResponseHeader& h);

}  // namespace etcdsafe::ops
