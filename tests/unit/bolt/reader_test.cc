#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bolt/inspect.h"
#include "bolt/reader.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::bolt {
namespace {

const std::string kData = ETCDSAFE_TESTDATA;

void ExpectStatusFile(const std::string& name) {
  auto j = nlohmann::json::parse(testutil::ReadFile(kData + "/" + name + ".status.json"));
  InspectResult r = Inspect(kData + "/" + name + ".db");
  EXPECT_TRUE(r.problems.empty()) << r.problems.front();
  EXPECT_EQ(r.status.hash, j["hash"].get<uint32_t>());
  EXPECT_EQ(r.status.revision, j["revision"].get<int64_t>());
  EXPECT_EQ(r.status.total_key, j["totalKey"].get<int64_t>());
  EXPECT_EQ(r.status.total_size, j["totalSize"].get<int64_t>());
}

TEST(InspectTest, SmallMatchesEtcdctl) { ExpectStatusFile("small"); }
TEST(InspectTest, MediumMatchesEtcdctl) { ExpectStatusFile("medium"); }

}  // namespace
}  // namespace etcdsafe::bolt
