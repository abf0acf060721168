// file:// repository safety (issue 12) on the real file system: ListDir reads one
// directory and lists regular files only; Open never blocks on a FIFO, never follows a
// symlink (to /dev/zero, to a file outside the repository, through a symlinked
// directory inside it) but accepts a symlinked repository root; writes and removals
// never go through a symlink; listings and Get are bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "store/store.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::store {
namespace {

using Clock = std::chrono::steady_clock;

ErrorCode CodeOf(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return ErrorCode::kInternal;
}

std::vector<std::string> Names(const std::vector<ObjectInfo>& v) {
  std::vector<std::string> out;
  for (const auto& o : v) out.push_back(o.name);
  return out;
}

void MkDir(const std::string& p) { ASSERT_EQ(::mkdir(p.c_str(), 0700), 0) << p; }
void Link(const std::string& target, const std::string& at) {
  ASSERT_EQ(::symlink(target.c_str(), at.c_str()), 0) << at;
}
void MkFifo(const std::string& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0) << p; }
// A bound unix socket at p (closed again: the socket file stays).
void MkSocket(const std::string& p) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  ASSERT_LT(p.size(), sizeof a.sun_path);
  std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << p;
  ::close(fd);
}
bool IsSymlink(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// Runs `f` on this thread; if it has not returned after `after`, calls `unstick` (which
// must make a blocked `f` return, e.g. open the FIFO's other end) so that a regression
// fails the test instead of hanging it.
void WithWatchdog(std::chrono::milliseconds after, const std::function<void()>& unstick,
                  const std::function<void()>& f) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread dog([&] {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, after, [&] { return done; })) {
      l.unlock();
      unstick();
    }
  });
  struct Finish {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& done;
    std::thread& dog;
    ~Finish() {
      {
        std::lock_guard<std::mutex> l(mu);
        done = true;
      }
      cv.notify_all();
      dog.join();
    }
  } finish{mu, cv, done, dog};
  f();
}

class FileSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("repo");
    MkDir(root_);
    store_ = OpenStore("file://" + root_);
  }
  std::string R(const std::string& rel) const { return root_ + "/" + rel; }

  testutil::TempDir tmp_;
  std::string root_;
  std::unique_ptr<Store> store_;
};

// Invariant: a repository lists only its own level. Sub-directories (another
// repository nested in this one, a restored etcd data dir), symlinks, FIFOs, sockets,
// devices and names that are not valid object names are not objects of this level.
TEST_F(FileSafety, ListDirReadsOneDirectoryAndOnlyRegularFiles) {
  store_->Put("etcd-20240101T000000Z.db.zst", "data");
  store_->Put("etcd-20240101T000000Z.manifest.json", "{}");
  testutil::WriteFile(R("etcd-x.db.zst.tmp-0123456789abcdef"), "temp left by a kill");
  // A nested repository and an etcd data dir: never looked into.
  MkDir(R("cluster-b"));
  MkDir(R("cluster-b/locks"));
  testutil::WriteFile(R("cluster-b/etcd-20240101T000000Z.db.zst"), "theirs");
  testutil::WriteFile(R("cluster-b/locks/l.json"), "{}");
  MkDir(R("etcd"));
  MkDir(R("etcd/member"));
  testutil::WriteFile(R("etcd/member/db"), "bolt");
  // Not objects.
  Link(R("etcd-20240101T000000Z.db.zst"), R("link.db"));
  Link(R("cluster-b"), R("dirlink"));
  MkFifo(R("fifo.db"));
  MkSocket(R("sock.db"));
  testutil::WriteFile(R("esc\x1b[31mred.db"), "control character in the name");
  testutil::WriteFile(R("nl\nforged.db"), "newline in the name");
  if (::geteuid() == 0) {
    ASSERT_EQ(::mknod(R("zero.db").c_str(), S_IFCHR | 0600, makedev(1, 5)), 0);
  }
  // locks/: one level too.
  MkDir(R("locks"));
  testutil::WriteFile(R("locks/a.json"), "{}");
  MkDir(R("locks/deeper"));
  testutil::WriteFile(R("locks/deeper/b.json"), "{}");

  const std::vector<std::string> top = {"etcd-20240101T000000Z.db.zst",
                                        "etcd-20240101T000000Z.manifest.json"};
  auto auto_start = Clock::now();
  auto listed = store_->ListDir("");
  EXPECT_LT(Clock::now() - auto_start, std::chrono::seconds(1));  // nothing opened or blocked
  EXPECT_EQ(Names(listed), top);
  EXPECT_EQ(listed[0].size, 4u);
  EXPECT_GT(listed[0].mtime_unix, 1600000000);
  std::vector<std::string> with_temp = top;
  with_temp.push_back("etcd-x.db.zst.tmp-0123456789abcdef");
  EXPECT_EQ(Names(store_->ListDir("", /*include_temp=*/true)), with_temp);
  EXPECT_EQ(Names(store_->ListDir("locks/")), std::vector<std::string>{"locks/a.json"});
  EXPECT_EQ(Names(store_->ListDir("cluster-b/")),
            std::vector<std::string>{"cluster-b/etcd-20240101T000000Z.db.zst"});
  EXPECT_TRUE(store_->ListDir("missing/").empty());
  // A listed temp can be looked at and removed (prune's sweep), a committed-name API
  // still refuses to create one.
  EXPECT_TRUE(store_->Stat("etcd-x.db.zst.tmp-0123456789abcdef").has_value());
  store_->Remove("etcd-x.db.zst.tmp-0123456789abcdef");
  EXPECT_FALSE(::access(R("etcd-x.db.zst.tmp-0123456789abcdef").c_str(), F_OK) == 0);
  // A directory reached through a symlink is not listed through it.
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store_->ListDir("dirlink/"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("\"dirlink\""), std::string::npos) << msg;
  for (std::string bad : {"locks", "/", "a//", "../", "./", "x\n/"}) {
    EXPECT_EQ(CodeOf([&] { store_->ListDir(bad); }), ErrorCode::kInvalidArgument) << bad;
  }
  // The recursive List follows no symlink and skips invalid names too.
  for (const auto& n : Names(store_->List(""))) {
    EXPECT_EQ(n.find("dirlink"), std::string::npos) << n;
    EXPECT_EQ(n.find_first_of("\x1b\n"), std::string::npos) << n;
  }
}

// Invariant: a listing is bounded; a directory with more entries than the limit is
// kDataLoss naming the repository (not an ever-growing vector).
TEST_F(FileSafety, ListingsAreBounded) {
  StoreOptions o;
  o.max_list_entries = 10;
  auto s = OpenStore("file://" + root_, o);
  for (int i = 0; i < 10; ++i) s->Put("o" + std::to_string(i), "x");
  EXPECT_EQ(s->ListDir("").size(), 10u);
  EXPECT_EQ(s->List("").size(), 10u);
  MkDir(R("d"));  // an 11th entry, even one that is not an object, counts
  std::string msg;
  EXPECT_EQ(CodeOf([&] { s->ListDir(""); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("file://" + root_ + ": more than 10 entries"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf([&] { s->List(""); }, &msg), ErrorCode::kDataLoss);
  EXPECT_EQ(store_->ListDir("").size(), 10u);  // the default limit is kMaxListEntries
}

// A FIFO under an object's name: Open, Get and Stat answer at once (old code: open(2)
// blocked until a writer came, forever in verify/restore).
TEST_F(FileSafety, FifoIsRefusedAtOnce) {
  MkFifo(R("etcd-1.db.zst"));
  auto unstick = [&] {
    // Only reached on a regression: a writer opening the FIFO releases a blocked open.
    int fd = ::open(R("etcd-1.db.zst").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
  };
  for (auto op : std::vector<std::function<void()>>{
           [&] { store_->Open("etcd-1.db.zst"); }, [&] { store_->Get("etcd-1.db.zst"); }}) {
    auto start = Clock::now();
    std::string msg;
    ErrorCode code = ErrorCode::kInternal;
    WithWatchdog(std::chrono::milliseconds(1500), unstick, [&] { code = CodeOf(op, &msg); });
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
    EXPECT_EQ(code, ErrorCode::kDataLoss);
    EXPECT_EQ(msg, "file://" + root_ + "/etcd-1.db.zst: not a regular file (FIFO)");
  }
  EXPECT_FALSE(store_->Stat("etcd-1.db.zst").has_value());
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store_->Remove("etcd-1.db.zst"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("not a regular file (FIFO)"), std::string::npos) << msg;
  struct stat st {};
  EXPECT_EQ(::lstat(R("etcd-1.db.zst").c_str(), &st), 0);  // left alone
}

// A symlink under an object's name, to /dev/zero (old: Get/restore read it until the
// disk was full) or to a file outside the repository (old: read as if it were ours).
TEST_F(FileSafety, SymlinkedObjectsAreRefused) {
  testutil::WriteFile(tmp_.Sub("outside-secret"), "not the repository's");
  Link("/dev/zero", R("zero.db.zst"));
  Link(tmp_.Sub("outside-secret"), R("outside.manifest.json"));
  Link("outside.manifest.json", R("relative.json"));
  for (std::string name : {"zero.db.zst", "outside.manifest.json", "relative.json"}) {
    SCOPED_TRACE(name);
    std::string msg;
    auto start = Clock::now();
    EXPECT_EQ(CodeOf([&] { store_->Open(name); }, &msg), ErrorCode::kDataLoss);
    EXPECT_EQ(msg, "file://" + root_ + "/" + name + ": not a regular file (symlink)");
    EXPECT_EQ(CodeOf([&] { store_->Get(name, 1 << 20); }), ErrorCode::kDataLoss);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
    EXPECT_FALSE(store_->Stat(name).has_value());
  }
  EXPECT_TRUE(store_->List("").empty());
  EXPECT_TRUE(store_->ListDir("").empty());
  // Writing an object over a symlink replaces the link; the target is untouched.
  store_->Put("outside.manifest.json", "ours");
  EXPECT_FALSE(IsSymlink(R("outside.manifest.json")));
  EXPECT_EQ(store_->Get("outside.manifest.json"), "ours");
  EXPECT_EQ(testutil::ReadFile(tmp_.Sub("outside-secret")), "not the repository's");
  // Removing a symlink-named object is refused, and the target stays.
  EXPECT_EQ(CodeOf([&] { store_->Remove("relative.json"); }), ErrorCode::kDataLoss);
  EXPECT_TRUE(IsSymlink(R("relative.json")));
}

// A directory inside the repository that is a symlink ("locks" -> elsewhere): no
// operation goes through it (old: read, wrote and deleted files outside the repository).
TEST_F(FileSafety, SymlinkedDirectoryInsideTheRepositoryIsNotFollowed) {
  const std::string elsewhere = tmp_.Sub("elsewhere");
  MkDir(elsewhere);
  testutil::WriteFile(elsewhere + "/x.json", "someone else's");
  Link(elsewhere, R("locks"));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store_->Open("locks/x.json"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_EQ(msg, "file://" + root_ +
                     "/locks/x.json: not a regular file (path component \"locks\" is a symlink)");
  EXPECT_EQ(CodeOf([&] { store_->Get("locks/x.json"); }), ErrorCode::kDataLoss);
  EXPECT_FALSE(store_->Stat("locks/x.json").has_value());
  EXPECT_EQ(CodeOf([&] { store_->Remove("locks/x.json"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("not removed"), std::string::npos) << msg;
  EXPECT_EQ(testutil::ReadFile(elsewhere + "/x.json"), "someone else's");
  EXPECT_EQ(CodeOf([&] { store_->Put("locks/y.json", "lock"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("\"locks\""), std::string::npos) << msg;
  EXPECT_NE(::access((elsewhere + "/y.json").c_str(), F_OK), 0);
  EXPECT_EQ(CodeOf([&] { store_->ListDir("locks/"); }), ErrorCode::kDataLoss);
  EXPECT_TRUE(store_->List("").empty());
  EXPECT_TRUE(store_->List("locks/").empty());
  // Deeper: a/b where b is the link.
  MkDir(R("a"));
  Link(elsewhere, R("a/b"));
  EXPECT_EQ(CodeOf([&] { store_->Open("a/b/x.json"); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("\"a/b\" is a symlink"), std::string::npos) << msg;
  // A regular file where a directory should be is just "not found".
  testutil::WriteFile(R("f"), "x");
  EXPECT_EQ(CodeOf([&] { store_->Open("f/x"); }), ErrorCode::kNotFound);
}

// The repository root itself may be a symlink (users point /var/backups/etcd at a mount).
TEST_F(FileSafety, SymlinkedRootWorks) {
  const std::string link = tmp_.Sub("via-link");
  Link(root_, link);
  auto s = OpenStore("file://" + link);
  s->Put("locks/l.json", "lock");
  s->Put("obj", "data");
  EXPECT_EQ(s->Get("obj"), "data");
  EXPECT_EQ(testutil::ReadFile(R("obj")), "data");
  EXPECT_EQ(s->Stat("locks/l.json")->size, 4u);
  EXPECT_EQ(Names(s->ListDir("")), std::vector<std::string>{"obj"});
  EXPECT_EQ(Names(s->ListDir("locks/")), std::vector<std::string>{"locks/l.json"});
  EXPECT_EQ(Names(s->List("")), (std::vector<std::string>{"locks/l.json", "obj"}));
  s->Remove("locks/l.json");
  EXPECT_FALSE(s->Stat("locks/l.json").has_value());
  // A root that does not exist yet is made on the first write, 0700 on every level.
  auto fresh = OpenStore("file://" + tmp_.Sub("new/repo"));
  EXPECT_TRUE(fresh->ListDir("").empty());
  fresh->Put("locks/x", "1");
  struct stat st {};
  ASSERT_EQ(::stat(tmp_.Sub("new/repo/locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

// Bytes read(2) by this process so far (/proc/self/io rchar).
uint64_t BytesRead() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t v = 0;
  while (in >> key >> v) {
    if (key == "rchar:") return v;
  }
  return 0;
}

// Get(name, limit) reads at most limit + 1 bytes of a larger object (old: a 64 KiB
// buffer's worth), and fails with kDataLoss.
TEST_F(FileSafety, GetReadsAtMostLimitPlusOne) {
  store_->Put("big", std::string(10 << 20, 'x'));
  // Reading /proc/self/io counts too: measure that overhead first.
  const uint64_t b0 = BytesRead();
  const uint64_t b1 = BytesRead();
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store_->Get("big", 1000); }, &msg), ErrorCode::kDataLoss);
  const uint64_t b2 = BytesRead();
  const int64_t read = static_cast<int64_t>(b2 - b1) - static_cast<int64_t>(b1 - b0);
  EXPECT_EQ(msg, "file://" + root_ + "/big: larger than 1000 bytes");
  EXPECT_NEAR(read, 1001, 8);  // the overhead's digits may vary a little
  EXPECT_EQ(store_->Get("big", 10 << 20).size(), size_t{10} << 20);  // exactly at the limit
}

}  // namespace
}  // namespace etcdsafe::store
