#include "backup/manifest.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace etcdsafe::backup {

std::string FormatUtc(int64_t unix_seconds, const char* format) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string ManifestToJson(const Manifest& m) {
  nlohmann::ordered_json j;
  j["format"] = m.format;
  j["id"] = m.id;
  j["time"] = FormatUtc(m.time_unix);
  j["time_unix"] = m.time_unix;
  j["data_object"] = m.data_object;
  j["cluster_id"] = m.cluster_id;
  j["member_id"] = m.member_id;
  j["etcd_version"] = m.etcd_version;
  j["source_endpoint"] = m.source_endpoint;
  j["revision"] = m.revision;
  j["total_keys"] = m.total_keys;
  j["status_hash"] = m.status_hash;
  j["db_size"] = m.db_size;
  j["db_sha256"] = m.db_sha256;
  j["stored_size"] = m.stored_size;
  j["stored_sha256"] = m.stored_sha256;
  j["compression"] = m.compression;
  j["compression_level"] = m.compression_level;
  j["encryption"] = m.encryption;
  j["key_id"] = m.key_id;
  j["tool_version"] = m.tool_version;
  return j.dump(2) + "\n";
}

Manifest ManifestFromJson(const std::string& json, const std::string& what) {
  try {
    nlohmann::json j = nlohmann::json::parse(json);
    Manifest m;
    m.format = j.at("format").get<int>();
    if (m.format != 1) {
      throw Error(ErrorCode::kUnsupported, what + ": manifest format " + std::to_string(m.format) +
                                               " is newer than this etcdsafe understands");
    }
    m.id = j.at("id").get<std::string>();
    m.time_unix = j.at("time_unix").get<int64_t>();
    m.data_object = j.at("data_object").get<std::string>();
    m.cluster_id = j.value("cluster_id", "");
    m.member_id = j.value("member_id", "");
    m.etcd_version = j.value("etcd_version", "");
    m.source_endpoint = j.value("source_endpoint", "");
    m.revision = j.at("revision").get<int64_t>();
    m.total_keys = j.at("total_keys").get<uint64_t>();
    m.status_hash = j.at("status_hash").get<uint32_t>();
    m.db_size = j.at("db_size").get<uint64_t>();
    m.db_sha256 = j.at("db_sha256").get<std::string>();
    m.stored_size = j.at("stored_size").get<uint64_t>();
    m.stored_sha256 = j.at("stored_sha256").get<std::string>();
    m.compression = j.at("compression").get<std::string>();
    m.compression_level = j.value("compression_level", 0);
    m.encryption = j.at("encryption").get<std::string>();
    m.key_id = j.value("key_id", "");
    m.tool_version = j.value("tool_version", "");
    if (m.data_object.empty() || m.data_object.find("..") != std::string::npos || m.data_object[0] == '/') {
      throw Error(ErrorCode::kDataLoss, what + ": bad data_object name");
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kDataLoss, what + ": malformed manifest: " + e.what());
  }
}

}  // namespace etcdsafe::backup
