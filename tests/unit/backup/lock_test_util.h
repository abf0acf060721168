// Lock objects for the lock tests: a valid lock of the current format by another host,
// with fields overridden.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "backup/lock.h"

namespace etcdsafe::backup::testing {

inline int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline std::string LockJson(std::initializer_list<std::pair<const char*, nlohmann::json>> overrides) {
  nlohmann::ordered_json j;
  j["etcdsafe_lock"] = kLockFormat;
  j["operation"] = "backup";
  j["host"] = "other-host";
  j["pid"] = 4242;
  j["boot_id"] = "00000000-0000-0000-0000-000000000000";
  j["pid_ns"] = 4026530000u;  // not ours (nor the initial namespace)
  j["pid_start"] = 0;
  j["since_unix"] = Now() - 3600;
  j["refreshed_unix"] = Now();
  j["token"] = std::string(32, 'a');
  for (const auto& [k, v] : overrides) j[k] = v;
  return j.dump() + "\n";
}

}  // namespace etcdsafe::backup::testing
