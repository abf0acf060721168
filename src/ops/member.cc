#include "ops/member.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "base/error.h"
#include "ops/etcdctl_output.h"

namespace etcdsafe::ops {
namespace {

using client::ClientConfig;
using client::EtcdClient;
using Members = std::vector<EtcdClient::MemberInfo>;

constexpr std::chrono::milliseconds kDefaultCommandTimeout{5000};  // etcdctl's

std::string U(uint64_t v) { return std::to_string(v); }
std::string Hex(uint64_t v, int width = 0) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%*llx", width, static_cast<unsigned long long>(v));
  return buf;
}
std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) out += (i ? sep : "") + v[i];
  return out;
}
bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::unique_ptr<EtcdClient> Connect(const ClientConfig& base) {
  ClientConfig c = base;
  if (c.command_timeout.count() <= 0) c.command_timeout = kDefaultCommandTimeout;
  return EtcdClient::Connect(c);  // nothing reachable: kUnavailable, exit 2
}

// Runs an RPC; etcd's refusals become etcdctl's exit 1 with etcd's text. Authentication
// failures keep their own code (exit 12).
template <class F>
bool Rpc(EtcdClient& c, CommandOutput* r, F&& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnauthenticated || e.code() == ErrorCode::kPermissionDenied) throw;
    std::string msg = e.what();
    if (StartsWith(msg, c.endpoint() + ": ")) msg = msg.substr(c.endpoint().size() + 2);
    r->exit_code = 1;
    r->error = msg;
    return false;
  }
}

std::string MemberJson(const EtcdClient::MemberInfo& m) {
  std::string j = "{";
  auto add = [&](const std::string& kv) { j += (j.size() > 1 ? "," : "") + kv; };
  auto list = [](const std::vector<std::string>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) o += (i ? "," : "") + JsonString(v[i]);
    return o + "]";
  };
  if (m.id) add("\"ID\":" + U(m.id));
  if (!m.name.empty()) add("\"name\":" + JsonString(m.name));
  if (!m.peer_urls.empty()) add("\"peerURLs\":" + list(m.peer_urls));
  if (!m.client_urls.empty()) add("\"clientURLs\":" + list(m.client_urls));
  if (m.is_learner) add("\"isLearner\":true");
  return j + "}";
}

std::string MembersJson(const Members& ms) {
  std::string j = "[";
  for (size_t i = 0; i < ms.size(); i++) j += (i ? "," : "") + MemberJson(ms[i]);
  return j + "]";
}

// {"header":{...}[,"member":{...}][,"members":[...]]}
std::string ResponseJson(const EtcdClient::ResponseHeader& h, const EtcdClient::MemberInfo* member,
                         const Members& ms) {
  std::string j = "{\"header\":" + HeaderJson(h);
  if (member != nullptr) j += ",\"member\":" + MemberJson(*member);
  if (!ms.empty()) j += ",\"members\":" + MembersJson(ms);
  return j + "}\n";
}

std::vector<std::vector<std::string>> MemberRows(const Members& ms) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : ms) {
    rows.push_back({Hex(m.id), m.name.empty() ? "unstarted" : "started", m.name, Join(m.peer_urls, ","),
                    Join(m.client_urls, ","), m.is_learner ? "true" : "false"});
  }
  return rows;
}

// add/remove/update/promote print only simple and json (etcdctl's printers).
OutputFormat ChangeFormat(const std::string& w) {
  OutputFormat f = ParseOutputFormat(w);
  if (f == OutputFormat::kTable || f == OutputFormat::kFields) ThrowFormatNotSupported(w);
  return f;
}

// Go's strconv.ParseUint(s, 16, 64) error texts.
bool ParseHex(const std::string& s, uint64_t* out, std::string* why) {
  if (s.empty()) {
    *why = "invalid syntax";
    return false;
  }
  uint64_t v = 0;
  bool overflow = false;
  for (char ch : s) {
    int d;
    if (ch >= '0' && ch <= '9') d = ch - '0';
    else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
    else { *why = "invalid syntax"; return false; }
    if (v >> 60) overflow = true;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  if (overflow) {
    *why = "value out of range";
    return false;
  }
  *out = v;
  return true;
}

}  // namespace

uint64_t ParseMemberId(const std::vector<std::string>& args) {
  if (args.size() != 1) throw Error(ErrorCode::kInvalidArgument, "member ID is not provided");
  uint64_t id = 0;
  std::string why;
  if (!ParseHex(args[0], &id, &why)) {
    throw Error(ErrorCode::kInvalidArgument, "bad member ID arg (strconv.ParseUint: parsing " +
                                                 GoQuote(args[0]) + ": " + why + "), expecting ID in Hex");
  }
  return id;
}

std::vector<std::string> SplitUrls(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

std::string CheckPeerUrls(const std::vector<std::string>& urls) {
  if (urls.empty()) return "no valid URLs given";
  for (std::string in : urls) {
    while (!in.empty() && (in.front() == ' ' || in.front() == '\t')) in.erase(in.begin());
    while (!in.empty() && (in.back() == ' ' || in.back() == '\t')) in.pop_back();
    const size_t colon = in.find("://");
    std::string scheme = colon == std::string::npos ? "" : in.substr(0, colon);
    for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs") {
      return "URL scheme must be http, https, unix, or unixs: " + in;
    }
    std::string rest = in.substr(colon + 3);
    const size_t path = rest.find_first_of("/?#");
    const std::string host = rest.substr(0, path);
    const std::string hostport = host.substr(host.find('@') == std::string::npos ? 0 : host.find('@') + 1);
    // net.SplitHostPort: "host:port" or "[v6]:port", exactly one colon outside brackets.
    bool ok;
    if (!hostport.empty() && hostport[0] == '[') {
      const size_t close = hostport.find(']');
      ok = close != std::string::npos && close + 1 < hostport.size() && hostport[close + 1] == ':' &&
           hostport.find(':', close + 2) == std::string::npos;
    } else {
      const size_t c1 = hostport.find(':');
      ok = c1 != std::string::npos && hostport.find(':', c1 + 1) == std::string::npos;
    }
    if (!ok) return "URL address does not have the form \"host:port\": " + in;
    if (path != std::string::npos && rest[path] == '/') return "URL must not contain a path: " + in;
  }
  return "";
}

CommandOutput MemberList(const ClientConfig& config, const std::string& w) {
  const OutputFormat f = ParseOutputFormat(w);
  CommandOutput r;
  auto c = Connect(config);
  Members ms;
  EtcdClient::ResponseHeader h;
  if (!Rpc(*c, &r, [&] { ms = c->MemberList(&h); })) return r;
  switch (f) {
    case OutputFormat::kSimple:
      for (const auto& row : MemberRows(ms)) r.out += Join(row, ", ") + "\n";
      break;
    case OutputFormat::kTable:
      r.out = RenderTable({"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}, MemberRows(ms));
      break;
    case OutputFormat::kJson:
      r.out = ResponseJson(h, nullptr, ms);
      break;
    case OutputFormat::kFields:
      r.out = HeaderFields(h);
      for (const auto& m : ms) {
        r.out += "\"ID\" : " + U(m.id) + "\n\"Name\" : " + GoQuote(m.name) + "\n";
        for (const auto& u : m.peer_urls) r.out += "\"PeerURL\" : " + GoQuote(u) + "\n";
        for (const auto& u : m.client_urls) r.out += "\"ClientURL\" : " + GoQuote(u) + "\n";
        r.out += std::string("\"IsLearner\" : ") + (m.is_learner ? "true" : "false") + "\n\n";
      }
      break;
  }
  return r;
}

CommandOutput MemberAdd(const ClientConfig& config, const std::vector<std::string>& args,
                        const std::string& peer_urls, bool learner, const std::string& w) {
  if (args.empty()) throw Error(ErrorCode::kInvalidArgument, "member name not provided");
  if (args.size() > 1) {
    std::string ev = "too many arguments";
    for (const auto& a : args) {
      std::string lower = a;
      for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (StartsWith(lower, "http")) ev += ", did you mean --peer-urls=" + a;
    }
    throw Error(ErrorCode::kInvalidArgument, ev);
  }
  const std::string& name = args[0];
  if (peer_urls.empty()) throw Error(ErrorCode::kInvalidArgument, "member peer urls not provided");
  const OutputFormat f = ChangeFormat(w);
  CommandOutput r;
  const std::vector<std::string> urls = SplitUrls(peer_urls);
  if (std::string bad = CheckPeerUrls(urls); !bad.empty()) {
    r.exit_code = 1;
    r.error = bad;
    return r;
  }
  auto c = Connect(config);
  Members ms;
  EtcdClient::ResponseHeader h;
  EtcdClient::MemberInfo added;
  if (!Rpc(*c, &r, [&] { added = c->MemberAdd(urls, learner, &ms, &h); })) return r;
  if (f == OutputFormat::kJson) {
    r.out = ResponseJson(h, &added, ms);
    return r;
  }
  // etcdctl 3.4 says "added to cluster" for learners too; 3.5 added "as learner".
  r.out = "Member " + Hex(added.id, 16) + " added to cluster " + Hex(h.cluster_id, 16) + "\n";
  // etcdctl re-reads the member list until the member that answered the add answers it
  // (after a fail-over another member may not know the new one yet).
  Members list;
  EtcdClient::ResponseHeader lh;
  if (!Rpc(*c, &r, [&] {
        list = c->MemberList(&lh);
        for (int i = 0; i < 50 && lh.member_id != h.member_id; i++) {
          c->Range("_");  // a quorum read to sync the member list
          list = c->MemberList(&lh);
        }
      })) {
    return r;
  }
  std::vector<std::string> conf;
  for (const auto& m : list) {
    for (const auto& u : m.peer_urls) conf.push_back((m.id == added.id ? name : m.name) + "=" + u);
  }
  r.out += "\nETCD_NAME=" + GoQuote(name) + "\nETCD_INITIAL_CLUSTER=" + GoQuote(Join(conf, ",")) +
           "\nETCD_INITIAL_ADVERTISE_PEER_URLS=" + GoQuote(Join(added.peer_urls, ",")) +
           "\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n";
  return r;
}

CommandOutput MemberRemove(const ClientConfig& config, const std::vector<std::string>& args,
                           const std::string& w) {
  const uint64_t id = ParseMemberId(args);
  const OutputFormat f = ChangeFormat(w);
  CommandOutput r;
  auto c = Connect(config);
  Members ms;
  EtcdClient::ResponseHeader h;
  if (!Rpc(*c, &r, [&] { c->MemberRemove(id, &ms, &h); })) return r;
  r.out = f == OutputFormat::kJson ? ResponseJson(h, nullptr, ms)
                                   : "Member " + Hex(id, 16) + " removed from cluster " + Hex(h.cluster_id, 16) + "\n";
  return r;
}

CommandOutput MemberUpdate(const ClientConfig& config, const std::vector<std::string>& args,
                           const std::string& peer_urls, const std::string& w) {
  const uint64_t id = ParseMemberId(args);
  if (peer_urls.empty()) throw Error(ErrorCode::kInvalidArgument, "member peer urls not provided");
  const OutputFormat f = ChangeFormat(w);
  CommandOutput r;
  const std::vector<std::string> urls = SplitUrls(peer_urls);
  if (std::string bad = CheckPeerUrls(urls); !bad.empty()) {
    r.exit_code = 1;
    r.error = bad;
    return r;
  }
  auto c = Connect(config);
  Members ms;
  EtcdClient::ResponseHeader h;
  if (!Rpc(*c, &r, [&] { c->MemberUpdate(id, urls, &ms, &h); })) return r;
  r.out = f == OutputFormat::kJson ? ResponseJson(h, nullptr, ms)
                                   : "Member " + Hex(id, 16) + " updated in cluster " + Hex(h.cluster_id, 16) + "\n";
  return r;
}

CommandOutput MemberPromote(const ClientConfig& config, const std::vector<std::string>& args,
                            const std::string& w) {
  const uint64_t id = ParseMemberId(args);
  const OutputFormat f = ChangeFormat(w);
  CommandOutput r;
  auto c = Connect(config);
  Members ms;
  EtcdClient::ResponseHeader h;
  if (!Rpc(*c, &r, [&] { c->MemberPromote(id, &ms, &h); })) return r;
  r.out = f == OutputFormat::kJson ? ResponseJson(h, nullptr, ms)
                                   : "Member " + Hex(id, 16) + " promoted in cluster " + Hex(h.cluster_id, 16) + "\n";
  return r;
}

}  // namespace etcdsafe::ops
