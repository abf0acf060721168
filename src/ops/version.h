// `etcdsafe version`: etcdctl 3.4's two lines ("etcdctl version: X", "API version: Y")
// with etcdsafe's own version, so scripts that parse etcdctl's output keep working.
#pragma once

#include <string>

namespace etcdsafe::ops {

inline constexpr char kVersion[] = "0.2.0";
// The etcd API this build speaks (etcd 3.4's v3 gRPC API).
inline constexpr char kApiVersion[] = "3.4";

// "etcdsafe version: 0.2.0\nAPI version: 3.4\n"
std::string VersionText();

}  // namespace etcdsafe::ops
