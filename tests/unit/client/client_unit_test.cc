// Unit tests of the client's pure parts: endpoint parsing and ETCDCTL_* environment.
#include <gtest/gtest.h>

#include <map>

#include "base/error.h"
#include "client/endpoint.h"
#include "client/etcd_client.h"

namespace etcdsafe::client {
namespace {

TEST(EndpointTest, Parses) {
  auto a = ParseEndpoint("https://127.0.0.1:2379", false);
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 2379);
  EXPECT_EQ(a.HostPort(), "127.0.0.1:2379");
  auto b = ParseEndpoint("http://localhost:1234/", true);
  EXPECT_FALSE(b.tls);
  EXPECT_EQ(b.HostPort(), "localhost:1234");
  EXPECT_FALSE(ParseEndpoint("10.0.0.1:2379", false).tls);
  EXPECT_TRUE(ParseEndpoint("10.0.0.1:2379", true).tls);
  auto v6 = ParseEndpoint("https://[::1]:2379", false);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.HostPort(), "[::1]:2379");
}

TEST(EndpointTest, RejectsMalformed) {
  for (const char* bad : {"127.0.0.1", "https://127.0.0.1", "unix://x:1", "h:0", "h:99999",
                          "h:12x", ":2379", "http://h:1/path", "::1:2379"}) {
    try {
      ParseEndpoint(bad, false);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(ConnectTest, NoEndpoints) {
  try {
    EtcdClient::Connect(ClientConfig{});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

EnvLookup Env(std::map<std::string, std::string> m) {
  return [m](const std::string& k, std::string* v) {
    auto it = m.find(k);
    if (it == m.end()) return false;
    *v = it->second;
    return true;
  };
}

TEST(EnvTest, FillsDefaultsOnly) {
  auto c = ApplyEnvironment(ClientConfig{}, Env({{"ETCDCTL_ENDPOINTS", "http://a:1,https://b:2"},
                                                 {"ETCDCTL_CACERT", "/ca"},
                                                 {"ETCDCTL_USER", "root:pw"},
                                                 {"ETCDCTL_DIAL_TIMEOUT", "1.5s"},
                                                 {"ETCDCTL_COMMAND_TIMEOUT", "1m30s"},
                                                 {"ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true"}}));
  EXPECT_EQ(c.endpoints, (std::vector<std::string>{"http://a:1", "https://b:2"}));
  EXPECT_EQ(c.cacert, "/ca");
  EXPECT_EQ(c.user, "root:pw");
  EXPECT_EQ(c.dial_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.command_timeout, std::chrono::milliseconds(90000));
  EXPECT_TRUE(c.insecure_skip_tls_verify);

  ClientConfig flags;
  flags.endpoints = {"http://x:1"};
  flags.dial_timeout = std::chrono::milliseconds(7);
  auto d = ApplyEnvironment(flags, Env({{"ETCDCTL_ENDPOINTS", "http://a:1"},
                                        {"ETCDCTL_DIAL_TIMEOUT", "3s"}}));
  EXPECT_EQ(d.endpoints, std::vector<std::string>{"http://x:1"});
  EXPECT_EQ(d.dial_timeout, std::chrono::milliseconds(7));
}

TEST(EnvTest, BadValues) {
  for (auto [k, v] : std::map<std::string, std::string>{{"ETCDCTL_DIAL_TIMEOUT", "5"},
                                                        {"ETCDCTL_COMMAND_TIMEOUT", "abc"},
                                                        {"ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "yes"}}) {
    try {
      ApplyEnvironment(ClientConfig{}, Env({{k, v}}));
      ADD_FAILURE() << k;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(k), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace etcdsafe::client
