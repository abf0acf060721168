#include "k8s/inspect.h"

namespace etcdsafe::k8s {
namespace {

bool IsBlock(const nlohmann::json& j) { return (j.is_object() || j.is_array()) && !j.empty(); }

std::string Scalar(const nlohmann::json& j) {
  if (j.is_object()) return "{}";
  if (j.is_array()) return "[]";
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Emit(const nlohmann::json& j, int indent, std::string* out) {
  const std::string pad(size_t(indent), ' ');
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      *out += pad + nlohmann::json(k).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ":";
      if (IsBlock(v)) {
        *out += "\n";
        Emit(v, indent + 2, out);
      } else {
        *out += " " + Scalar(v) + "\n";
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      *out += pad + "-";
      if (IsBlock(v)) {
        *out += "\n";
        Emit(v, indent + 2, out);
      } else {
        *out += " " + Scalar(v) + "\n";
      }
    }
  } else {
    *out += pad + Scalar(j) + "\n";
  }
}

}  // namespace

std::string ToYaml(const nlohmann::json& j) {
  std::string out;
  if (!IsBlock(j)) return Scalar(j) + "\n";
  Emit(j, 0, &out);
  return out;
}

}  // namespace etcdsafe::k8s
