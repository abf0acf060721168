#include "ops/endpoint.h"

#include <chrono>
#include <future>
#include <memory>

#include "base/error.h"
#include "ops/etcdctl_output.h"
#include "snapshot/status_format.h"

namespace etcdsafe::ops {
namespace {

using client::ClientConfig;
using client::EtcdClient;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kDefaultCommandTimeout{5000};  // etcdctl's

ClientConfig ForEndpoint(const ClientConfig& base, const std::string& ep) {
  ClientConfig c = base;
  c.endpoints = {ep};
  if (c.command_timeout.count() <= 0) c.command_timeout = kDefaultCommandTimeout;
  return c;
}

// etcdctl's text for an endpoint it cannot reach; other failures keep etcd's text.
std::string Reason(const Error& e, bool connecting) {
  if (connecting && e.code() == ErrorCode::kUnavailable) return "context deadline exceeded";
  return e.what();
}

std::string U(uint64_t v) { return std::to_string(v); }
std::string I(int64_t v) { return std::to_string(v); }
std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}
std::string Bool(bool b) { return b ? "true" : "false"; }

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) out += (i ? sep : "") + v[i];
  return out;
}

struct Health {
  std::string ep;
  bool healthy = false;
  std::string took, error;
};

Health CheckOne(const ClientConfig& base, const std::string& ep) {
  Health h;
  h.ep = ep;
  const auto start = Clock::now();
  std::unique_ptr<EtcdClient> c;
  try {
    c = EtcdClient::Connect(ForEndpoint(base, ep));
  } catch (const Error& e) {
    h.took = GoDuration(Clock::now() - start);
    h.error = Reason(e, true);
    return h;
  }
  try {
    // Health(): the linearizable get, then the alarm list; the get's time is "took".
    h.took = GoDuration(c->Health());
    h.healthy = true;
  } catch (const Error& e) {
    h.took = GoDuration(Clock::now() - start);
    std::string msg = e.what();
    // client::Health's text is "<ep> is unhealthy: <etcdctl's reason>"; keep the reason.
    const std::string prefix = c->endpoint() + " is unhealthy: ";
    if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
    const std::string commit = "failed to commit proposal: ";
    if (msg.rfind(commit, 0) == 0) {
      msg = msg.substr(commit.size());
      // The get's own failure: etcd's text without our "<endpoint>: " prefix.
      if (msg.rfind(ep + ": ", 0) == 0) msg = msg.substr(ep.size() + 2);
    } else if (msg.rfind("Unable to fetch the alarm list", 0) == 0) {
      msg = "Unable to fetch the alarm list";
    } else if (msg.rfind("Active Alarm(s): ", 0) == 0) {
      msg += " ";  // etcdctl appends "NOSPACE " per alarm
    }
    h.error = msg;
  }
  return h;
}

}  // namespace

std::string HeaderJson(const EtcdClient::ResponseHeader& h) {
  std::string out = "{";
  auto field = [&](const char* name, const std::string& v, bool zero) {
    if (zero) return;
    if (out.size() > 1) out += ",";
    out += std::string("\"") + name + "\":" + v;
  };
  field("cluster_id", U(h.cluster_id), h.cluster_id == 0);
  field("member_id", U(h.member_id), h.member_id == 0);
  field("revision", I(h.revision), h.revision == 0);
  field("raft_term", U(h.raft_term), h.raft_term == 0);
  return out + "}";
}

std::string HeaderFields(const EtcdClient::ResponseHeader& h) {
  return "\"ClusterID\" : " + U(h.cluster_id) + "\n\"MemberID\" : " + U(h.member_id) +
         "\n\"Revision\" : " + I(h.revision) + "\n\"RaftTerm\" : " + U(h.raft_term) + "\n";
}

std::vector<std::string> ResolveEndpoints(const ClientConfig& config, bool cluster,
                                          std::string* failure) {
  if (!cluster) return config.endpoints;
  ClientConfig c = config;
  if (c.command_timeout.count() <= 0) c.command_timeout = kDefaultCommandTimeout;
  bool connecting = true;
  try {
    std::unique_ptr<EtcdClient> client = EtcdClient::Connect(c);
    connecting = false;
    std::vector<std::string> out;
    for (const auto& m : client->MemberList()) {
      out.insert(out.end(), m.client_urls.begin(), m.client_urls.end());
    }
    return out;
  } catch (const Error& e) {
    *failure = "failed to fetch endpoints from etcd cluster member list: " + Reason(e, connecting);
    return {};
  }
}

CommandOutput EndpointHealth(const ClientConfig& config, bool cluster, const std::string& w) {
  const OutputFormat f = ParseOutputFormat(w);
  CommandOutput r;
  std::string failure;
  std::vector<std::string> eps = ResolveEndpoints(config, cluster, &failure);
  if (!failure.empty()) {
    r.exit_code = 1;
    r.error = failure;
    return r;
  }
  std::vector<std::future<Health>> futures;
  for (const auto& ep : eps) {
    futures.push_back(std::async(std::launch::async, [&config, ep] { return CheckOne(config, ep); }));
  }
  std::vector<Health> hs;
  for (auto& fu : futures) hs.push_back(fu.get());
  bool errs = false;
  for (const auto& h : hs) errs = errs || !h.error.empty();
  switch (f) {
    case OutputFormat::kSimple:
      for (const auto& h : hs) {
        if (h.error.empty()) {
          r.err += h.ep + " is healthy: successfully committed proposal: took = " + h.took + "\n";
        } else {
          r.err += h.ep + " is unhealthy: failed to commit proposal: " + h.error + "\n";
        }
      }
      break;
    case OutputFormat::kTable: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& h : hs) rows.push_back({h.ep, Bool(h.healthy), h.took, h.error});
      r.out = RenderTable({"endpoint", "health", "took", "error"}, rows);
      break;
    }
    case OutputFormat::kJson: {
      std::string j = "[";
      for (size_t i = 0; i < hs.size(); i++) {
        const auto& h = hs[i];
        j += (i ? "," : "") + std::string("{\"endpoint\":") + JsonString(h.ep) +
             ",\"health\":" + Bool(h.healthy) + ",\"took\":" + JsonString(h.took);
        if (!h.error.empty()) j += ",\"error\":" + JsonString(h.error);
        j += "}";
      }
      r.out = j + "]\n";
      break;
    }
    case OutputFormat::kFields:
      for (const auto& h : hs) {
        r.out += "\"Endpoint\" : " + GoQuote(h.ep) + "\n\"Health\" : " + Bool(h.healthy) +
                 "\n\"Took\" : " + h.took + "\n\"Error\" : " + h.error + "\n\n";
      }
      break;
  }
  if (errs) {
    r.exit_code = 1;
    r.error = "unhealthy cluster";
  }
  return r;
}

CommandOutput EndpointStatus(const ClientConfig& config, bool cluster, const std::string& w) {
  const OutputFormat f = ParseOutputFormat(w);
  CommandOutput r;
  std::string failure;
  std::vector<std::string> eps = ResolveEndpoints(config, cluster, &failure);
  if (!failure.empty()) {
    r.exit_code = 1;
    r.error = failure;
    return r;
  }
  struct Row {
    std::string ep;
    EtcdClient::Status st;
  };
  std::vector<Row> list;
  for (const auto& ep : eps) {
    bool connecting = true;
    try {
      auto c = EtcdClient::Connect(ForEndpoint(config, ep));
      connecting = false;
      list.push_back(Row{ep, c->EndpointStatus()});
    } catch (const Error& e) {
      r.err += "Failed to get the status of endpoint " + ep + " (" + Reason(e, connecting) + ")\n";
      r.exit_code = 1;
    }
  }
  auto cells = [](const Row& x) {
    const auto& s = x.st;
    return std::vector<std::string>{x.ep,
                                    Hex(s.header.member_id),
                                    s.version,
                                    snapshot::HumanizeBytes(static_cast<uint64_t>(s.db_size)),
                                    Bool(s.leader == s.header.member_id),
                                    Bool(s.is_learner),
                                    U(s.raft_term),
                                    U(s.raft_index),
                                    U(s.raft_applied_index),
                                    Join(s.errors, ", ")};
  };
  switch (f) {
    case OutputFormat::kSimple:
      for (const auto& x : list) r.out += Join(cells(x), ", ") + "\n";
      break;
    case OutputFormat::kTable: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& x : list) rows.push_back(cells(x));
      r.out = RenderTable({"endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term",
                           "raft index", "raft applied index", "errors"},
                          rows);
      break;
    }
    case OutputFormat::kJson: {
      std::string j = "[";
      for (size_t i = 0; i < list.size(); i++) {
        const auto& s = list[i].st;
        j += (i ? "," : "") + std::string("{\"Endpoint\":") + JsonString(list[i].ep) +
             ",\"Status\":{\"header\":" + HeaderJson(s.header);
        if (!s.version.empty()) j += ",\"version\":" + JsonString(s.version);
        if (s.db_size) j += ",\"dbSize\":" + I(s.db_size);
        if (s.leader) j += ",\"leader\":" + U(s.leader);
        if (s.raft_index) j += ",\"raftIndex\":" + U(s.raft_index);
        if (s.raft_term) j += ",\"raftTerm\":" + U(s.raft_term);
        if (s.raft_applied_index) j += ",\"raftAppliedIndex\":" + U(s.raft_applied_index);
        if (!s.errors.empty()) {
          j += ",\"errors\":[";
          for (size_t k = 0; k < s.errors.size(); k++) j += (k ? "," : "") + JsonString(s.errors[k]);
          j += "]";
        }
        if (s.db_size_in_use) j += ",\"dbSizeInUse\":" + I(s.db_size_in_use);
        if (s.is_learner) j += ",\"isLearner\":true";
        j += "}}";
      }
      r.out = j + "]\n";
      break;
    }
    case OutputFormat::kFields:
      for (const auto& x : list) {
        const auto& s = x.st;
        std::string errors = "[";
        for (size_t k = 0; k < s.errors.size(); k++) errors += (k ? " " : "") + s.errors[k];
        errors += "]";
        r.out += HeaderFields(s.header) + "\"Version\" : " + GoQuote(s.version) + "\n\"DBSize\" : " +
                 I(s.db_size) + "\n\"Leader\" : " + U(s.leader) + "\n\"IsLearner\" : " + Bool(s.is_learner) +
                 "\n\"RaftIndex\" : " + U(s.raft_index) + "\n\"RaftTerm\" : " + U(s.raft_term) +
                 "\n\"RaftAppliedIndex\" : " + U(s.raft_applied_index) + "\n\"Errors\" : " + errors +
                 "\n\"Endpoint\" : " + GoQuote(x.ep) + "\n\n";
      }
      break;
  }
  return r;
}

CommandOutput EndpointHashKV(const ClientConfig& config, bool cluster, const std::string& w,
                             int64_t revision) {
  const OutputFormat f = ParseOutputFormat(w);
  CommandOutput r;
  std::string failure;
  std::vector<std::string> eps = ResolveEndpoints(config, cluster, &failure);
  if (!failure.empty()) {
    r.exit_code = 1;
    r.error = failure;
    return r;
  }
  struct Row {
    std::string ep;
    EtcdClient::HashKVResult h;
  };
  std::vector<Row> list;
  std::string last_error;
  for (const auto& ep : eps) {
    bool connecting = true;
    try {
      auto c = EtcdClient::Connect(ForEndpoint(config, ep));
      connecting = false;
      list.push_back(Row{ep, c->HashKV(revision)});
    } catch (const Error& e) {
      last_error = Reason(e, connecting);
      r.err += "Failed to get the hash of endpoint " + ep + " (" + last_error + ")\n";
    }
  }
  switch (f) {
    case OutputFormat::kSimple:
      for (const auto& x : list) r.out += x.ep + ", " + U(x.h.hash) + "\n";
      break;
    case OutputFormat::kTable: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& x : list) rows.push_back({x.ep, U(x.h.hash)});
      r.out = RenderTable({"endpoint", "hash"}, rows);
      break;
    }
    case OutputFormat::kJson: {
      std::string j = "[";
      for (size_t i = 0; i < list.size(); i++) {
        const auto& h = list[i].h;
        j += (i ? "," : "") + std::string("{\"Endpoint\":") + JsonString(list[i].ep) +
             ",\"HashKV\":{\"header\":" + HeaderJson(h.header);
        if (h.hash) j += ",\"hash\":" + U(h.hash);
        if (h.compact_revision) j += ",\"compact_revision\":" + I(h.compact_revision);
        j += "}}";
      }
      r.out = j + "]\n";
      break;
    }
    case OutputFormat::kFields:
      for (const auto& x : list) {
        r.out += HeaderFields(x.h.header) + "\"Endpoint\" : " + GoQuote(x.ep) + "\n\"Hash\" : " + U(x.h.hash) +
                 "\n\n";
      }
      break;
  }
  if (!last_error.empty()) {
    r.exit_code = 1;
    r.error = last_error;
  }
  return r;
}

}  // namespace etcdsafe::ops
