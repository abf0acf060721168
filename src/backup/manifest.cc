#include "backup/manifest.h"

#include <ctime>
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>

#include "backup/layout.h"
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
  if (!m.kind.empty()) j["kind"] = m.kind;
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
  if (!m.mac.empty()) j["mac"] = m.mac;
  return j.dump(2) + "\n";
}

std::string ManifestMacInput(Manifest m) {
  m.mac.clear();
  return ManifestToJson(m);
}

namespace {

constexpr size_t kMaxManifestBytes = 64 << 10;
constexpr int64_t kMinTime = 946684800;     // 2000-01-01T00:00:00Z
constexpr int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z
constexpr uint64_t kMaxSize = uint64_t{1} << 48;

class Checker {
 public:
  Checker(const nlohmann::json& j, const std::string& what) : j_(j), what_(what) {}

  [[noreturn]] void Fail(const std::string& why) const {
    throw Error(ErrorCode::kDataLoss, what_ + ": invalid manifest: " + why);
  }
  const nlohmann::json* Field(const char* key, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) Fail(std::string("missing \"") + key + "\"");
      return nullptr;
    }
    return &*it;
  }
  int64_t Int(const char* key, int64_t min, int64_t max, bool required = true, int64_t def = 0) const {
    const nlohmann::json* v = Field(key, required);
    if (v == nullptr) return def;
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(max) || (min > 0 && u < static_cast<uint64_t>(min))) OutOfRange(key, min, max);
      return static_cast<int64_t>(u);
    }
    if (!v->is_number_integer()) Fail(std::string("\"") + key + "\" is not an integer");
    int64_t i = v->get<int64_t>();
    if (i < min || i > max) OutOfRange(key, min, max);
    return i;
  }
  // Printable ASCII only, at most max_len bytes.
  std::string Str(const char* key, size_t max_len, bool required = true) const {
    const nlohmann::json* v = Field(key, required);
    if (v == nullptr) return "";
    if (!v->is_string()) Fail(std::string("\"") + key + "\" is not a string");
    const std::string& s = v->get_ref<const std::string&>();
    if (s.size() > max_len) Fail(std::string("\"") + key + "\" is longer than " + std::to_string(max_len) + " bytes");
    for (unsigned char c : s) {
      if (c < 0x20 || c >= 0x7f) Fail(std::string("\"") + key + "\" holds a control or non-ASCII character");
    }
    return s;
  }
  std::string Hex(const char* key, size_t min_len, size_t max_len, bool required = true) const {
    std::string s = Str(key, max_len, required);
    if (!required && s.empty()) return s;
    if (s.size() < min_len) Fail(std::string("\"") + key + "\" is too short");
    for (char c : s) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) Fail(std::string("\"") + key + "\" is not lowercase hex");
    }
    return s;
  }

 private:
  [[noreturn]] void OutOfRange(const char* key, int64_t min, int64_t max) const {
    Fail(std::string("\"") + key + "\" out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  const nlohmann::json& j_;
  const std::string& what_;
};

const std::set<std::string>& KnownKeys() {
  static const std::set<std::string> keys = {
      "format",      "id",         "time",          "time_unix",    "data_object",   "cluster_id",
      "member_id",   "etcd_version", "source_endpoint", "revision", "total_keys",    "status_hash",
      "db_size",     "db_sha256",  "stored_size",   "stored_sha256", "compression", "compression_level",
      "encryption",  "key_id",     "tool_version",  "mac",         "kind"};
  return keys;
}

}  // namespace

Manifest ManifestFromJson(const std::string& json, const std::string& what) {
  if (json.size() > kMaxManifestBytes) {
    throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: larger than " + std::to_string(kMaxManifestBytes) + " bytes");
  }
  nlohmann::json j;
  std::string duplicate;
  try {
    // One flat object: nested values and duplicate keys (which JSON parsers resolve
    // differently) are refused.
    std::set<std::string> seen;
    j = nlohmann::json::parse(json, [&](int d, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::key && d == 1) {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
      }
      if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) && d > 0) {
        throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: nested value");
      }
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kDataLoss, what + ": malformed manifest: " + e.what());
  }
  if (!duplicate.empty()) throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: duplicate key \"" + duplicate + "\"");
  if (!j.is_object()) throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: not a JSON object");
  Checker c(j, what);
  for (const auto& item : j.items()) {
    if (!KnownKeys().count(item.key())) c.Fail("unknown key \"" + EscapeForTerminal(item.key()) + "\"");
  }
  Manifest m;
  const nlohmann::json* format = c.Field("format", true);
  if (!format->is_number_integer() && !format->is_number_unsigned()) c.Fail("\"format\" is not an integer");
  if (format->get<int64_t>() > kManifestFormat) {
    throw Error(ErrorCode::kUnsupported, what + ": manifest format " + std::to_string(format->get<int64_t>()) +
                                             " is newer than this etcdsafe understands");
  }
  m.format = static_cast<int>(c.Int("format", 1, kManifestFormat));
  m.kind = c.Str("kind", 16, false);
  if (c.Field("kind", false) != nullptr && m.kind != "snapshot" && m.kind != "pki") {
    c.Fail("unknown \"kind\" \"" + m.kind + "\" (want snapshot or pki)");
  }
  m.id = c.Str("id", 256);
  m.time_unix = c.Int("time_unix", kMinTime, kMaxTime);
  if (c.Str("time", 32) != FormatUtc(m.time_unix)) c.Fail("\"time\" does not match \"time_unix\"");
  m.data_object = c.Str("data_object", 256);
  m.cluster_id = c.Hex("cluster_id", 1, 16, false);
  m.member_id = c.Hex("member_id", 1, 16, false);
  m.etcd_version = c.Str("etcd_version", 64, false);
  m.source_endpoint = c.Str("source_endpoint", 1024, false);
  m.revision = c.Int("revision", 0, INT64_MAX);  // 0: an etcd never written to
  m.total_keys = static_cast<uint64_t>(c.Int("total_keys", 0, INT64_MAX));
  m.status_hash = static_cast<uint32_t>(c.Int("status_hash", 0, UINT32_MAX));
  m.db_size = static_cast<uint64_t>(c.Int("db_size", 1, static_cast<int64_t>(kMaxSize)));
  m.db_sha256 = c.Hex("db_sha256", 64, 64);
  m.stored_size = static_cast<uint64_t>(c.Int("stored_size", 1, static_cast<int64_t>(kMaxSize)));
  m.stored_sha256 = c.Hex("stored_sha256", 64, 64);
  m.compression = c.Str("compression", 16);
  m.compression_level = static_cast<int>(c.Int("compression_level", -131072, 22, false, 0));
  m.encryption = c.Str("encryption", 32);
  m.key_id = c.Hex("key_id", 16, 16, false);
  m.tool_version = c.Str("tool_version", 64, false);
  m.mac = c.Str("mac", 128, false);
  if (m.Kind() == BackupKind::kPki) {
    if (m.revision != 0 || m.status_hash != 0) c.Fail("a pki backup with a revision or status hash");
    if (m.db_size > kMaxPkiArchiveBytes) {
      c.Fail("a pki archive larger than " + std::to_string(kMaxPkiArchiveBytes) + " bytes");
    }
  }
  if (!DataExtension(m.compression, m.encryption)) {
    c.Fail("unknown compression \"" + m.compression + "\" or encryption \"" + m.encryption + "\"");
  }
  const bool encrypted = m.encryption != "none";
  if (encrypted != !m.key_id.empty()) c.Fail(encrypted ? "encrypted but no \"key_id\"" : "\"key_id\" without encryption");
  if (!m.mac.empty()) {
    if (m.format < 2 || !encrypted) c.Fail("\"mac\" on an unencrypted or format 1 manifest");
    const std::string hex = m.mac.substr(std::min(m.mac.size(), sizeof(kMacPrefix) - 1));
    bool ok = m.mac.rfind(kMacPrefix, 0) == 0 && hex.size() == 64;
    for (char ch : hex) ok = ok && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
    if (!ok) c.Fail("\"mac\" is not hmac-sha256:<64 hex>");
  } else if (m.format >= 2 && encrypted) {
    c.Fail("encrypted manifest without \"mac\"");
  }
  if (!IsBackupId(m.id)) c.Fail("\"id\" is not a backup id");
  return m;
}

void ValidateManifestName(const Manifest& m, const std::string& object_name, const std::string& what) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: " + why);
  };
  ParsedName p = ClassifyName(object_name);
  if (p.kind != NameKind::kManifest) fail("not a manifest name");
  if (m.id + kManifestSuffix != object_name) fail("id \"" + m.id + "\" differs from its file name");
  if (p.revision != m.revision) fail("revision " + std::to_string(m.revision) + " differs from its id");
  if (p.time_unix != m.time_unix) fail("time " + FormatUtc(m.time_unix) + " differs from its id");
  std::optional<std::string> ext = DataExtension(m.compression, m.encryption, m.Kind());
  if (!ext || m.data_object != p.stem + *ext) {
    fail("data_object \"" + m.data_object + "\" is not " + p.stem + ext.value_or(".db"));
  }
}

}  // namespace etcdsafe::backup
