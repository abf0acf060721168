// The contract of store.h, checked against every backend: file:// on a temp dir and
// s3:// on a local s3rver (multipart with 5 MiB parts).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/error.h"
#include "store_test_util.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::store {
namespace {

using testing::RandomData;
using testing::ReadAllOdd;

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "file") {
      url_ = "file://" + tmp_.Sub("repo");
    } else {
      auto& s3 = testing::SharedS3();
      url_ = "s3://" + testing::NewBucket(s3) + "/repo/prefix";
      options_ = testing::S3Options(s3.endpoint());
    }
    store_ = OpenStore(url_, options_);
  }
  std::vector<std::string> DirNames(const std::string& dir, bool include_temp = false) {
    std::vector<std::string> out;
    for (const auto& i : store_->ListDir(dir, include_temp)) out.push_back(i.name);
    return out;
  }
  std::vector<std::string> Names(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& i : store_->List(prefix)) out.push_back(i.name);
    return out;
  }

  testutil::TempDir tmp_;
  std::string url_;
  StoreOptions options_;
  std::unique_ptr<Store> store_;
};

TEST_P(Conformance, RoundTripSizes) {
  const size_t sizes[] = {0, 1, (5u << 20) + 1, 50u << 20};
  for (size_t size : sizes) {
    SCOPED_TRACE(size);
    std::string data = RandomData(size, static_cast<uint32_t>(size));
    std::string name = "obj/" + std::to_string(size);
    {
      auto sink = store_->Create(name);
      // Uneven writes straddling part boundaries.
      size_t off = 0, step = 1;
      while (off < data.size()) {
        size_t k = std::min(step, data.size() - off);
        sink->Write(reinterpret_cast<const uint8_t*>(data.data()) + off, k);
        off += k;
        step = step * 3 + 7;
      }
      sink->Close();
    }
    auto src = store_->Open(name);
    std::string back = ReadAllOdd(*src);
    ASSERT_EQ(back.size(), data.size());
    EXPECT_TRUE(back == data);
    auto st = store_->Stat(name);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->size, size);
    EXPECT_EQ(st->name, name);
    EXPECT_GT(st->mtime_unix, 1600000000);
  }
}

TEST_P(Conformance, AbandonedCreateLeavesNothing) {
  {
    auto sink = store_->Create("small");
    sink->Write(AsBytes("not committed"));
  }
  {
    auto sink = store_->Create("big");  // past one part: a multipart upload on S3
    std::string data = RandomData(12u << 20, 7);
    sink->Write(AsBytes(data));
  }
  EXPECT_TRUE(Names("").empty());
  EXPECT_FALSE(store_->Stat("small").has_value());
  EXPECT_FALSE(store_->Stat("big").has_value());
  // An abandoned overwrite keeps the old object.
  store_->Put("keep", "old");
  {
    auto sink = store_->Create("keep");
    sink->Write(AsBytes("new"));
  }
  EXPECT_EQ(store_->Get("keep"), "old");
}

TEST_P(Conformance, ListPrefixesSorted) {
  for (std::string n : {"b/x/y", "a/2", "ab", "a/1", "a b/\xc3\xa9+&<>.txt", "c"}) store_->Put(n, n);
  EXPECT_EQ(Names(""), (std::vector<std::string>{"a b/\xc3\xa9+&<>.txt", "a/1", "a/2", "ab",
                                                  "b/x/y", "c"}));
  EXPECT_EQ(Names("a/"), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_EQ(Names("a"), (std::vector<std::string>{"a b/\xc3\xa9+&<>.txt", "a/1", "a/2", "ab"}));
  EXPECT_EQ(Names("b/x"), (std::vector<std::string>{"b/x/y"}));
  EXPECT_TRUE(Names("zzz").empty());
  EXPECT_EQ(store_->Get("a b/\xc3\xa9+&<>.txt"), "a b/\xc3\xa9+&<>.txt");
  auto infos = store_->List("a/1");
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].size, 3u);
}

TEST_P(Conformance, ListMoreThanOnePage) {
  const int n = 1100;  // S3 pages at 1000 keys: needs a continuation token
  std::vector<std::string> want;
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "many/%05d", i);
    want.push_back(name);
  }
  // Four writers: also exercises concurrent use of one Store.
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) store_->Put(want[static_cast<size_t>(i)], "x");
    });
  }
  for (auto& t : ts) t.join();
  store_->Put("other", "y");
  EXPECT_EQ(Names("many/"), want);
  EXPECT_EQ(store_->List("").size(), static_cast<size_t>(n) + 1);
}

TEST_P(Conformance, RemoveIsIdempotent) {
  store_->Put("dir/x", "1");
  store_->Remove("dir/x");
  EXPECT_FALSE(store_->Stat("dir/x").has_value());
  EXPECT_NO_THROW(store_->Remove("dir/x"));
  EXPECT_NO_THROW(store_->Remove("never/existed"));
  EXPECT_TRUE(Names("").empty());
}

TEST_P(Conformance, MissingObjectIsNotFound) {
  try {
    store_->Open("nope/missing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(std::string(e.what()), store_->Describe() + "/nope/missing: not found");
  }
  EXPECT_FALSE(store_->Stat("nope/missing").has_value());
  try {
    store_->Get("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST_P(Conformance, OverwriteReplaces) {
  store_->Put("m", "first version");
  store_->Put("m", "v2");
  EXPECT_EQ(store_->Get("m"), "v2");
  EXPECT_EQ(store_->Stat("m")->size, 2u);
  EXPECT_EQ(Names(""), std::vector<std::string>{"m"});
}

TEST_P(Conformance, GetLimitAndBadNames) {
  store_->Put("big", std::string(1000, 'x'));
  try {
    store_->Get("big", 999);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
  for (std::string bad : {"", "/a", "a/../b", "x.tmp-0123456789abcdef"}) {
    try {
      store_->Create(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

// Invariant: ListDir sees one level of the repository, never a sub-prefix (which may
// hold another repository), sorted, with sizes; "" is the root.
TEST_P(Conformance, ListDirIsOneLevel) {
  for (std::string n : {"top2", "top1", "a b+&<>.json", "locks/l1", "locks/deeper/l2",
                        "nested/repo/etcd-x.db", "nested/top", "z/y/x/w"}) {
    store_->Put(n, n);
  }
  EXPECT_EQ(DirNames(""), (std::vector<std::string>{"a b+&<>.json", "top1", "top2"}));
  EXPECT_EQ(DirNames("", true), DirNames(""));  // nothing uncommitted
  EXPECT_EQ(DirNames("locks/"), std::vector<std::string>{"locks/l1"});
  EXPECT_EQ(DirNames("locks/deeper/"), std::vector<std::string>{"locks/deeper/l2"});
  EXPECT_EQ(DirNames("nested/"), std::vector<std::string>{"nested/top"});
  EXPECT_TRUE(DirNames("z/").empty());
  EXPECT_TRUE(DirNames("missing/").empty());
  auto infos = store_->ListDir("");
  ASSERT_EQ(infos.size(), 3u);
  EXPECT_EQ(infos[1].size, 4u);
  EXPECT_GT(infos[1].mtime_unix, 1600000000);
  for (std::string bad : {"locks", "/", "a//", "../", "x.tmp-0123456789abcdef/"}) {
    try {
      store_->ListDir(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  // Temp names (what ListDir(dir, true) returns) can be looked at and removed, never
  // created.
  EXPECT_FALSE(store_->Stat("x.tmp-0123456789abcdef").has_value());
  EXPECT_NO_THROW(store_->Remove("x.tmp-0123456789abcdef"));
}

// ListDir pages like List (S3: 1000 keys a page, with delimiter "/") and is bounded:
// more entries than max_list_entries is kDataLoss naming the repository.
TEST_P(Conformance, ListDirPagesAndIsBounded) {
  const int n = 1100;
  std::vector<std::string> want;
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "many/%05d", i);
    want.push_back(name);
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) store_->Put(want[static_cast<size_t>(i)], "x");
    });
  }
  for (auto& t : ts) t.join();
  store_->Put("many/sub/deeper", "y");
  store_->Put("top", "z");
  EXPECT_EQ(DirNames("many/"), want);
  EXPECT_EQ(DirNames(""), std::vector<std::string>{"top"});
  StoreOptions small = options_;
  small.max_list_entries = 1000;
  auto bounded = OpenStore(url_, small);
  try {
    bounded->ListDir("many/");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find(store_->Describe() + "/many/"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("more than 1000 entries"), std::string::npos)
        << e.what();
  }
  try {
    bounded->List("");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
  EXPECT_EQ(bounded->ListDir("").size(), 1u);  // "top" and the prefix "many/": 2 entries
}

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::Values("file", "s3"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace etcdsafe::store
