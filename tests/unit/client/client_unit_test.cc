// Unit tests of the client's pure parts: endpoint parsing and ETCDCTL_* environment.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <map>

#include "base/error.h"
#include "client/endpoint.h"
#include "client/etcd_client.h"
#include "testutil/temp_dir.h"

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

// `--endpoints http://root:Pw@host:port` used to repeat the password in the error.
TEST(EndpointTest, RedactsCredentials) {
  EXPECT_EQ(RedactEndpoint("http://root:Pw@127.0.0.1:1"), "http://root:***@127.0.0.1:1");
  EXPECT_EQ(RedactEndpoint("https://tok3n@h:2379"), "https://***@h:2379");
  EXPECT_EQ(RedactEndpoint("root:Pw@h:1"), "root:***@h:1");
  EXPECT_EQ(RedactEndpoint("http://u:p@ss:w/rd@h:1/"), "http://u:***@h:1/");
  EXPECT_EQ(RedactEndpoint("http://u:a/b@h:1"), "http://u:***@h:1");
  EXPECT_EQ(RedactEndpoint("http://h:1"), "http://h:1");
  EXPECT_EQ(RedactEndpoint("[::1]:2379"), "[::1]:2379");
  for (const char* text : {"http://root:Pw@127.0.0.1:1", "https://root:Pw@[::1]:2379", "root:Pw@127.0.0.1:1",
                           "http://Pw@127.0.0.1:1", "http://root:Pw@127.0.0.1:x", "ftp://root:Pw@h:1",
                           "http://root:P@w/x@127.0.0.1:1/"}) {
    try {
      ParseEndpoint(text, false);
      ADD_FAILURE() << "accepted an endpoint with credentials";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_EQ(msg.find("Pw"), std::string::npos) << msg;
      EXPECT_NE(msg.find("***@"), std::string::npos) << msg;
      EXPECT_NE(msg.find("credentials in an endpoint are not supported"), std::string::npos) << msg;
    }
  }
  // Connect's errors go through ParseEndpoint; the failure list uses Endpoint::original.
  ClientConfig c;
  c.endpoints = {"http://root:Pw@127.0.0.1:1"};
  try {
    EtcdClient::Connect(c);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("Pw"), std::string::npos) << e.what();
  }
}

#ifdef ETCDSAFE_BINARY
// The real CLI, global flags after the subcommand as etcdctl users write them: nothing on
// stdout or stderr may repeat the password.
TEST(EndpointTest, BinaryDoesNotPrintThePassword) {
  struct stat st {};
  ASSERT_EQ(::stat(ETCDSAFE_BINARY, &st), 0) << ETCDSAFE_BINARY << " missing (client_unit_test depends on it)";
  testutil::TempDir d;
  std::string cmd = std::string(ETCDSAFE_BINARY) + " snapshot save " + d.Sub("x.db") +
                    " --endpoints http://root:Pw@127.0.0.1:1 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128) << out;  // kExitBadArgs
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(out.find("Pw"), std::string::npos) << out;
  EXPECT_NE(out.find("root:***@127.0.0.1:1"), std::string::npos) << out;
}
#endif

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
