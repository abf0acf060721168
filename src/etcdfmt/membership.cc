#include "etcdfmt/membership.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/error.h"
#include "etcdfmt/urls.h"

namespace etcdsafe::etcdfmt {
namespace {

[[noreturn]] void Fail(const std::string& msg) { throw Error(ErrorCode::kInvalidArgument, msg); }

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) {
    if (i > 0) out += sep;
    out += v[i];
  }
  return out;
}

// types.URLsMap.String(): all "name=url" pairs sorted, joined with ','.
std::string UrlsMapString(const std::map<std::string, std::vector<std::string>>& m) {
  std::vector<std::string> pairs;
  for (const auto& [name, urls] : m) {
    for (const auto& u : urls) pairs.push_back(name + "=" + u);
  }
  std::sort(pairs.begin(), pairs.end());
  return Join(pairs, ",");
}

// etcd's advertiseMatchesCluster without DNS: same three error shapes.
void CheckAdvertiseMatches(const std::string& name, const std::vector<std::string>& cluster_urls,
                           const std::vector<std::string>& advertise) {
  if (advertise == cluster_urls) return;
  std::string reason;
  if (advertise.size() != cluster_urls.size()) {
    reason = "len(" + GoQuoteList(advertise) + ") != len(" + GoQuoteList(cluster_urls) + ")";
  } else {
    for (size_t i = 0; i < advertise.size(); i++) {
      if (advertise[i] != cluster_urls[i]) {
        reason = "resolved urls: " + GoQuote(advertise[i]) + " != " + GoQuote(cluster_urls[i]);
        break;
      }
    }
  }
  std::set<std::string> ap(advertise.begin(), advertise.end());
  std::set<std::string> init(cluster_urls.begin(), cluster_urls.end());
  std::vector<std::string> missing;
  // etcd iterates Go maps here, so with several missing URLs its order is random; ours
  // is sorted.
  for (const auto& u : init) {
    if (!ap.count(u)) missing.push_back(name + "=" + u);
  }
  if (!missing.empty()) {
    Fail("--initial-cluster has " + Join(missing, ",") +
         " but missing from --initial-advertise-peer-urls=" + Join(advertise, ",") + " (" +
         reason + ")");
  }
  std::map<std::string, std::vector<std::string>> umap{{name, advertise}};
  for (const auto& u : ap) {
    if (!init.count(u)) missing.push_back(u);
  }
  if (!missing.empty()) {
    Fail("--initial-advertise-peer-urls has " + Join(missing, ",") +
         " but missing from --initial-cluster=" + UrlsMapString(umap));
  }
  Fail("failed to resolve " + Join(advertise, ",") + " to match --initial-cluster=" +
       UrlsMapString(umap) + " (" + reason + ")");
}

}  // namespace

uint64_t MemberId(const std::vector<std::string>& sorted_urls, std::string_view token) {
  std::string b;
  for (const auto& u : sorted_urls) b += u;
  b += token;
  auto d = Sha1Of(AsBytes(b));
  return LoadBE64(d.data());
}

uint64_t ClusterId(std::vector<uint64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::string b;
  for (uint64_t id : ids) AppendBE64(&b, id);
  auto d = Sha1Of(AsBytes(b));
  return LoadBE64(d.data());
}

std::string RaftAttributesJson(const Member& m) {
  std::string out = "{\"peerURLs\":";
  if (m.peer_urls.empty()) {
    out += "null";  // Go marshals a nil slice as null; restore never has one
  } else {
    out += "[";
    for (size_t i = 0; i < m.peer_urls.size(); i++) {
      if (i > 0) out += ",";
      out += GoJsonQuote(m.peer_urls[i]);
    }
    out += "]";
  }
  out += "}";
  return out;
}

std::string MemberJson(const Member& m) {
  // RaftAttributes is embedded, so its fields are inlined after "id".
  std::string attrs = RaftAttributesJson(m);
  std::string out = "{\"id\":" + std::to_string(m.id) + "," + attrs.substr(1, attrs.size() - 2);
  if (!m.name.empty()) out += ",\"name\":" + GoJsonQuote(m.name);
  out += "}";
  return out;
}

RestoreCluster BuildRestoreCluster(const std::string& name, const std::string& initial_cluster,
                                   const std::string& token,
                                   const std::string& initial_advertise_peer_urls) {
  // Same order as etcd: advertise URLs, initial cluster, then VerifyBootstrap.
  std::vector<std::string> advertise = NewPeerUrls(SplitComma(initial_advertise_peer_urls));
  std::map<std::string, std::vector<std::string>> cluster = NewUrlsMap(initial_cluster);

  auto local = cluster.find(name);
  if (local == cluster.end()) {
    Fail("couldn't find local name " + GoQuote(name) + " in the initial cluster configuration");
  }
  CheckAdvertiseMatches(name, local->second, advertise);
  std::set<std::string> seen;
  for (const auto& [n, urls] : cluster) {
    for (const auto& u : urls) {
      if (!seen.insert(u).second) {
        Fail("initial cluster " + UrlsMapString(cluster) + " has duplicate url");
      }
    }
  }

  RestoreCluster rc;
  rc.local_name = name;
  std::vector<uint64_t> ids;
  for (const auto& [n, urls] : cluster) {
    Member m{MemberId(urls, token), n, urls};
    if (std::find(ids.begin(), ids.end(), m.id) != ids.end()) {
      Fail("member exists with identical ID " + HexNoPad(m.id));
    }
    if (m.id == 0) Fail("cannot use 0 as member id");
    ids.push_back(m.id);
    if (n == name) rc.local_id = m.id;
    rc.members.push_back(std::move(m));
  }
  std::sort(rc.members.begin(), rc.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  rc.cluster_id = ClusterId(ids);
  return rc;
}

}  // namespace etcdsafe::etcdfmt
