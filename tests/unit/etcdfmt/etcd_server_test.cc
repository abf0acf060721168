// Tests against a real etcd 3.4 server on free 127.0.0.1 ports (never 2379/2380):
//   * the WAL reader reads what a live server wrote;
//   * acceptance: etcdctl's restored db + OUR wal + OUR .snap starts etcd and serves data.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/file.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/snap.h"
#include "etcdfmt/wal.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::etcdfmt {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// One etcd child process; stopped (SIGTERM, then SIGKILL) on destruction.
class EtcdProcess {
 public:
  EtcdProcess(const std::string& data_dir, const std::string& name, int client_port, int peer_port,
              const std::string& log_path) {
    client_ = "http://127.0.0.1:" + std::to_string(client_port);
    std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
    std::vector<std::string> args = {"etcd",
                                     "--data-dir", data_dir,
                                     "--name", name,
                                     "--listen-client-urls", client_,
                                     "--advertise-client-urls", client_,
                                     "--listen-peer-urls", peer,
                                     "--initial-advertise-peer-urls", peer,
                                     "--initial-cluster", name + "=" + peer};
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* log = std::fopen(log_path.c_str(), "w");
      if (log != nullptr) {
        ::dup2(fileno(log), 1);
        ::dup2(fileno(log), 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("etcd", argv.data());
      ::_exit(127);
    }
  }
  ~EtcdProcess() { Stop(); }

  const std::string& endpoint() const { return client_; }

  // etcdctl against this server; returns its exit code.
  int Ctl(const std::string& args, std::string* out) const {
    return testutil::RunCommand("ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s --endpoints " +
                                    client_ + " " + args,
                                out);
  }

  bool WaitReady() const {
    for (int i = 0; i < 60; i++) {
      std::string out;
      if (Ctl("endpoint health", &out) == 0) return true;
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) return false;  // died
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; i++) {
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  std::string client_;
};

TEST(EtcdServerTest, ReadsWalWrittenByRunningEtcd) {
  testutil::TempDir tmp;
  int cp = FreePort(), pp = FreePort();
  ASSERT_GT(cp, 0);
  ASSERT_GT(pp, 0);
  {
    EtcdProcess etcd(tmp.Sub("data"), "n1", cp, pp, tmp.Sub("etcd.log"));
    ASSERT_TRUE(etcd.WaitReady()) << testutil::ReadFile(tmp.Sub("etcd.log"));
    for (int i = 0; i < 20; i++) {
      std::string out;
      ASSERT_EQ(etcd.Ctl("put /k" + std::to_string(i) + " value-" + std::to_string(i), &out), 0) << out;
    }
    etcd.Stop();
  }
  WalContents c = ReadWal(tmp.Sub("data/member/wal"));
  ASSERT_TRUE(c.metadata);
  ASSERT_TRUE(c.hard_state);
  // A fresh single-member server: ConfChange for itself, then normal entries.
  ASSERT_GE(c.entries.size(), 20u);
  EXPECT_EQ(c.entries[0].type, kEntryConfChange);
  ConfChange cc = DecodeConfChange(AsBytes(*c.entries[0].data));
  EXPECT_EQ(cc.node_id, c.metadata->node_id);
  EXPECT_NE(cc.context->find("\"name\":\"n1\""), std::string::npos) << *cc.context;
  EXPECT_GE(c.hard_state->commit, c.entries.back().index);
  EXPECT_EQ(c.hard_state->vote, c.metadata->node_id);
  size_t puts = 0;
  for (const Entry& e : c.entries) {
    if (e.type == kEntryNormal && e.data && e.data->find("value-19") != std::string::npos) puts++;
  }
  EXPECT_EQ(puts, 1u);
  for (size_t i = 1; i < c.entries.size(); i++) EXPECT_EQ(c.entries[i].index, c.entries[i - 1].index + 1);
}

TEST(EtcdServerTest, EtcdStartsFromOurWalAndSnap) {
  testutil::TempDir tmp;
  int cp = FreePort(), pp = FreePort();
  ASSERT_GT(cp, 0);
  std::string peer = "http://127.0.0.1:" + std::to_string(pp);
  std::string name = "acc\"<node>";
  std::string cluster = name + "=" + peer;
  std::string data = tmp.Sub("data");
  // etcdctl makes the db (not our job); we replace its WAL and .snap with ours.
  std::string out;
  ASSERT_EQ(testutil::RunCommand("ETCDCTL_API=3 etcdctl snapshot restore '" +
                                     std::string(ETCDSAFE_SOURCE_DIR) +
                                     "/tests/testdata/small.db' --data-dir " + data +
                                     " --name '" + name + "' --initial-cluster '" + cluster +
                                     "' --initial-advertise-peer-urls " + peer +
                                     " --initial-cluster-token acc-token",
                                 &out),
            0)
      << out;
  RestoreCluster rc = BuildRestoreCluster(name, cluster, "acc-token", peer);
  RemoveAll(data + "/member/wal");
  RemoveAll(data + "/member/snap/" + SnapFileName(1, 1));
  CreateRestoreWal(data + "/member/wal", rc);
  WriteRestoreSnap(data + "/member/snap", rc);

  EtcdProcess etcd(data, name, cp, pp, tmp.Sub("etcd.log"));
  ASSERT_TRUE(etcd.WaitReady()) << testutil::ReadFile(tmp.Sub("etcd.log"));
  ASSERT_EQ(etcd.Ctl("get /registry/namespaces/default --print-value-only", &out), 0) << out;
  EXPECT_NE(out.find("default"), std::string::npos) << out;
  ASSERT_EQ(etcd.Ctl("get '' --prefix --keys-only", &out), 0) << out;
  EXPECT_NE(out.find("/registry/configmaps/default/cm1"), std::string::npos) << out;
  ASSERT_EQ(etcd.Ctl("member list -w simple", &out), 0) << out;
  EXPECT_NE(out.find(HexNoPad(rc.local_id)), std::string::npos) << out;
  EXPECT_NE(out.find(peer), std::string::npos) << out;
  ASSERT_EQ(etcd.Ctl("endpoint status -w json", &out), 0) << out;
  EXPECT_NE(out.find("\"cluster_id\":" + std::to_string(rc.cluster_id)), std::string::npos) << out;
  // And it accepts writes on top of the restored log.
  ASSERT_EQ(etcd.Ctl("put /after-restore ok", &out), 0) << out;
  etcd.Stop();
  WalContents c = ReadWal(data + "/member/wal");
  EXPECT_GT(c.entries.size(), 1u);
}

}  // namespace
}  // namespace etcdsafe::etcdfmt
