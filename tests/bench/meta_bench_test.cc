// meta-bench end to end on a local directory, tiny: every phase runs, counts
// exactly the operations it was asked for with no error, cleans up after
// itself, and bad settings are refused. No speed is asserted.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

const std::string kMetaBench = std::string(SHOAL_BIN_DIR) + "/bench/meta-bench";

class MetaBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/var/tmp/meta-bench-test-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int Run(const std::string& args, std::string* out) {
    int rc = Shell(kMetaBench + " " + args + " 2>&1", out);
    if (rc != 0) std::cerr << "meta-bench " << args << " exited " << rc << ":\n" << *out;
    return rc;
  }
  std::string dir_;
};

// phase name -> (ops, errors) from the --json object.
std::map<std::string, std::pair<double, double>> Phases(const std::string& json) {
  std::map<std::string, std::pair<double, double>> out;
  std::regex phase(R"re(\{"name":"([a-z-]+)","ops":([0-9]+),"seconds":[0-9.e+-]+,"ops_per_s":[0-9.]+,"errors":([0-9]+)\})re");
  for (std::sregex_iterator it(json.begin(), json.end(), phase), end; it != end; ++it)
    out[(*it)[1]] = {std::stod((*it)[2]), std::stod((*it)[3])};
  return out;
}

TEST_F(MetaBenchTest, EveryPhaseCountsItsOperationsAndCleansUp) {
  std::string out, json = dir_ + "/r.json";
  std::filesystem::create_directories(dir_ + "/work");
  ASSERT_EQ(Run("--path " + dir_ + "/work --procs 2 --files 50 --tree-dirs 3 --tree-files 20 --tree-size 4096 --json " +
                    json,
                &out),
            0);
  auto p = Phases(ReadFile(json));
  ASSERT_EQ(p.size(), 8u) << ReadFile(json);
  for (const char* name : {"create", "stat", "read", "remove"}) EXPECT_EQ(p[name].first, 100) << name;
  EXPECT_EQ(p["readdir"].first, 2 + 100);  // two directories, 50 entries each
  EXPECT_EQ(p["tree-create"].first, 3 + 60);
  EXPECT_EQ(p["tree-walk"].first, 3 + 60);
  EXPECT_EQ(p["tree-remove"].first, 60 + 3);
  for (const auto& [name, r] : p) EXPECT_EQ(r.second, 0) << name;
  EXPECT_NE(out.find("ops/s"), std::string::npos) << out;
  // Nothing left behind in the work directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/work"));
}

TEST_F(MetaBenchTest, KeepLeavesWhatTheChosenPhasesLeft) {
  std::string out;
  ASSERT_EQ(Run("--path " + dir_ + " --phases create --files 5 --tree-dirs 2 --tree-files 3 --tree-size 100 --keep", &out), 0);
  // tree-remove ran (it is part of the tree phases), the created files stay.
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_))
    if (e.is_regular_file()) ++files;
  EXPECT_EQ(files, 5u);
}

TEST_F(MetaBenchTest, BadSettingsAreRefusedClearly) {
  std::string out;
  EXPECT_NE(Shell(kMetaBench + " --path " + dir_ + "/missing 2>&1", &out), 0);
  EXPECT_NE(out.find("not a directory"), std::string::npos) << out;
  EXPECT_NE(Shell(kMetaBench + " --path " + dir_ + " --phases create,frobnicate 2>&1", &out), 0);
  EXPECT_NE(out.find("unknown phase 'frobnicate'"), std::string::npos) << out;
  EXPECT_NE(Shell(kMetaBench + " --path " + dir_ + " --procs 0 2>&1", &out), 0);
  EXPECT_NE(Shell(kMetaBench + " --path " + dir_ + " --phases '' 2>&1", &out), 0);
  EXPECT_NE(out.find("nothing to do"), std::string::npos) << out;
}

}  // namespace
}  // namespace shoal::testing
