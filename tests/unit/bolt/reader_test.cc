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

TEST(PageSource, PatchReplacesBytesInEveryOverlappingRead) {
  std::string data(3 * PageSource::kWindowSize, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(i * 7);
  auto src = PageSource::FromMemory(AsBytes(data));
  const uint64_t at = PageSource::kWindowSize - 3;  // straddles a window boundary
  src->SetPatch(at, "ABCDEFGH");
  std::string want = data;
  want.replace(at, 8, "ABCDEFGH");
  struct Range {
    uint64_t offset;
    size_t len;
  } ranges[] = {{0, 4096}, {at - 100, 200}, {at + 5, 10}, {at - 2, 3}, {at + 7, 1}, {at + 8, 50}, {0, data.size()}};
  for (const Range& r : ranges) {
    PageRef ref = src->Read(r.offset, r.len);
    EXPECT_EQ(std::string(AsString(ref.bytes())), want.substr(r.offset, r.len)) << r.offset << "+" << r.len;
    EXPECT_EQ(ref.offset(), r.offset);
  }
  // File-backed sources patch the same way.
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("f"), data);
  auto file = PageSource::OpenFile(dir.Sub("f"));
  file->SetPatch(at, "ABCDEFGH");
  for (const Range& r : ranges) {
    EXPECT_EQ(std::string(AsString(file->Read(r.offset, r.len).bytes())), want.substr(r.offset, r.len));
  }
  EXPECT_EQ(testutil::ReadFile(dir.Sub("f")), data);  // the file itself is untouched
}

}  // namespace
}  // namespace etcdsafe::bolt
