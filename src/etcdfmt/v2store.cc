#include "etcdfmt/v2store.h"

#include <algorithm>

#include "base/bytes.h"

namespace etcdsafe::etcdfmt {
namespace {

constexpr int kHistoryCapacity = 1000;
constexpr const char* kZeroTime = "\"0001-01-01T00:00:00Z\"";

// One node: Path, CreatedIndex, ModifiedIndex, ExpireTime, Value, Children.
// `children` is the already-encoded object ("{...}") or "null" for a key/value node.
std::string Node(const std::string& path, uint64_t index, const std::string& value,
                 const std::string& children) {
  std::string idx = std::to_string(index);
  return "{\"Path\":" + GoJsonQuote(path) + ",\"CreatedIndex\":" + idx +
         ",\"ModifiedIndex\":" + idx + ",\"ExpireTime\":" + kZeroTime +
         ",\"Value\":" + GoJsonQuote(value) + ",\"Children\":" + children + "}";
}

}  // namespace

std::string RestoreV2StoreJson(const RestoreCluster& cluster) {
  const auto& members = cluster.members;  // ascending id: member i gets index i
  const size_t n = members.size();

  // Children maps are emitted with keys sorted bytewise (hex strings), while the
  // indexes follow numeric id order.
  std::vector<size_t> by_hex(n);
  for (size_t i = 0; i < n; i++) by_hex[i] = i;
  std::sort(by_hex.begin(), by_hex.end(), [&](size_t a, size_t b) {
    return HexNoPad(members[a].id) < HexNoPad(members[b].id);
  });

  std::string members_children = "{";
  for (size_t k = 0; k < n; k++) {
    size_t i = by_hex[k];
    std::string hex = HexNoPad(members[i].id);
    std::string dir = "/0/members/" + hex;
    std::string attr = Node(dir + "/raftAttributes", i + 1, RaftAttributesJson(members[i]), "null");
    if (k > 0) members_children += ",";
    members_children += GoJsonQuote(hex) + ":" +
                        Node(dir, i + 1, "", "{\"raftAttributes\":" + attr + "}");
  }
  members_children += "}";

  std::string zero_children = "{";
  if (n > 0) zero_children += "\"members\":" + Node("/0/members", 1, "", members_children);
  zero_children += "}";

  std::string root_children = "{\"0\":" + Node("/0", 0, "", zero_children) +
                              ",\"1\":" + Node("/1", 0, "", "{}") + "}";

  std::string events = "[";
  for (size_t i = 0; i < kHistoryCapacity; i++) {
    if (i > 0) events += ",";
    if (i < n) {
      std::string idx = std::to_string(i + 1);
      events += "{\"action\":\"create\",\"node\":{\"key\":" +
                GoJsonQuote("/0/members/" + HexNoPad(members[i].id) + "/raftAttributes") +
                ",\"value\":" + GoJsonQuote(RaftAttributesJson(members[i])) +
                ",\"modifiedIndex\":" + idx + ",\"createdIndex\":" + idx + "}}";
    } else {
      events += "null";
    }
  }
  events += "]";

  std::string ns = std::to_string(n);
  std::string out = "{\"Root\":" + Node("/", 0, "", root_children);
  out += ",\"WatcherHub\":{\"EventHistory\":{\"Queue\":{\"Events\":" + events + ",\"Size\":" + ns +
         ",\"Front\":0,\"Back\":" + ns + ",\"Capacity\":1000},\"StartIndex\":1,\"LastIndex\":" +
         ns + "}}";
  out += ",\"CurrentIndex\":" + ns;
  out += ",\"Stats\":{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,"
         "\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,"
         "\"createSuccess\":" + ns + ",\"createFail\":0,\"compareAndSwapSuccess\":0,"
         "\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,"
         "\"expireCount\":0,\"watchers\":0}";
  out += ",\"CurrentVersion\":2}";
  return out;
}

}  // namespace etcdsafe::etcdfmt
