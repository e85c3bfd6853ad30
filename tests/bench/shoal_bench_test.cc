// shoal-bench end to end: every backend that can start here writes its file
// and dataset with `make` and reads them back with --verify (every byte
// checked), and a corrupted byte must fail the run. No speed is asserted.
//
//   posix:  a directory under /var/tmp (O_DIRECT needs a real filesystem)
//   native: a real local cluster (meta + 3 storage processes, no mount)
//   nfs:    NFS-Ganesha started by bench/nfs-ganesha.sh, when it and the
//           daemon are installed; skipped with the reason otherwise
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

const std::string kBench = std::string(SHOAL_BIN_DIR) + "/bench/shoal-bench";

// The numbers of shoal-bench's --json object, by key.
std::map<std::string, double> ReadJson(const std::string& path) {
  std::map<std::string, double> out;
  std::string text = ReadFile(path);
  std::regex number("\"([a-z0-9_]+)\":(-?[0-9.]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), number), end; it != end; ++it)
    out[(*it)[1]] = std::stod((*it)[2]);
  return out;
}

class ShoalBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/var/tmp/shoal-bench-test-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Runs shoal-bench with `args`; its exit status, its output in *out.
  int Bench(const std::string& args, std::string* out = nullptr) {
    std::string text;
    int rc = Shell(kBench + " " + args + " 2>&1", &text);
    if (out) *out = text;
    if (rc != 0) std::cerr << "shoal-bench " << args << " exited " << rc << ":\n" << text;
    return rc;
  }

  // A verified read run that must read `ops` reads of exactly `bytes_each`
  // bytes (0: any) with no error.
  void ExpectClean(const std::string& args, uint64_t ops, uint64_t bytes_each) {
    std::string json = dir_ + "/result.json";
    ASSERT_EQ(Bench(args + " --verify --seconds 0 --ops " + std::to_string(ops) + " --json " + json), 0);
    auto r = ReadJson(json);
    EXPECT_EQ(r["ops"], static_cast<double>(ops)) << args;
    EXPECT_EQ(r["errors"], 0) << args;
    EXPECT_EQ(r["verify_failures"], 0) << args;
    if (bytes_each) {
      EXPECT_EQ(r["bytes"], static_cast<double>(ops * bytes_each)) << args;
    }
    EXPECT_GT(r["bytes"], 0) << args;
  }

  std::string dir_;
};

TEST_F(ShoalBenchTest, PosixFileAndDatasetReadBackExactly) {
  ASSERT_EQ(Bench("make posix --path " + dir_ + "/f.dat --size 8m"), 0);
  ExpectClean("posix --path " + dir_ + "/f.dat --bs 4k --qd 16", 3000, 4096);
  ExpectClean("posix --path " + dir_ + "/f.dat --bs 1m --qd 4 --threads 2", 40, 1 << 20);
  ASSERT_EQ(Bench("make posix --path " + dir_ + "/ds --files 40 --min-size 1 --max-size 300k"), 0);
  // Three passes over the files, sizes not multiples of the O_DIRECT block.
  ExpectClean("posix --path " + dir_ + "/ds --dataset --qd 8 --threads 2", 120, 0);
}

TEST_F(ShoalBenchTest, PosixVerifyFailsOnAFlippedByte) {
  ASSERT_EQ(Bench("make posix --path " + dir_ + "/ds --files 10 --min-size 8k --max-size 64k"), 0);
  std::string victim = dir_ + "/ds/00000003";
  int fd = open(victim.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b;
  ASSERT_EQ(pread(fd, &b, 1, 5000), 1);
  b ^= 0x40;
  ASSERT_EQ(pwrite(fd, &b, 1, 5000), 1);
  close(fd);
  std::string out, json = dir_ + "/bad.json";
  // Ten reads are one pass: every file, the damaged one included, is read once.
  EXPECT_NE(Bench("posix --path " + dir_ + "/ds --dataset --qd 4 --verify --seconds 0 --ops 10 --json " + json, &out), 0);
  EXPECT_EQ(ReadJson(json)["verify_failures"], 1) << out;
  EXPECT_NE(out.find("00000003 byte 5000 differs"), std::string::npos) << out;
}

TEST_F(ShoalBenchTest, BadSettingsAreRefusedClearly) {
  ASSERT_EQ(Bench("make posix --path " + dir_ + "/f.dat --size 64k"), 0);
  std::string out;
  EXPECT_NE(Bench("posix --path " + dir_ + "/f.dat --bs 1000 --seconds 1", &out), 0);
  EXPECT_NE(out.find("multiple of 4096"), std::string::npos) << out;
  EXPECT_NE(Bench("posix --path " + dir_ + "/f.dat --bs 1m --seconds 1", &out), 0);
  EXPECT_NE(out.find("smaller than one block"), std::string::npos) << out;
  EXPECT_NE(Bench("posix --path " + dir_ + "/missing.dat --seconds 1", &out), 0);
  EXPECT_NE(out.find("missing.dat"), std::string::npos) << out;
  EXPECT_NE(Bench("posix --path " + dir_ + "/f.dat --bs 4q", &out), 0);
  EXPECT_NE(out.find("bad size"), std::string::npos) << out;
}

TEST_F(ShoalBenchTest, NativeFileAndDatasetReadBackExactlyFromALocalCluster) {
  LocalCluster cluster;
  ASSERT_TRUE(cluster.Start(/*mount=*/false)) << cluster.error();
  std::string conn = " --meta-address " + cluster.meta_address() + " --cluster-id test --cluster-key-file " +
                     cluster.key_file();
  ASSERT_EQ(Bench("make native --path /bench/f.dat --size 6m" + conn), 0);
  ExpectClean("native --path /bench/f.dat --bs 4k --qd 32" + conn, 2000, 4096);
  ExpectClean("native --path /bench/f.dat --bs 1m --qd 4 --threads 2" + conn, 30, 1 << 20);
  ASSERT_EQ(Bench("make native --path /bench/ds --files 30 --min-size 1 --max-size 200k" + conn), 0);
  ExpectClean("native --path /bench/ds --dataset --qd 8 --threads 2" + conn, 60, 0);
  std::string out;
  EXPECT_NE(Bench("native --path /bench/none.dat --seconds 1" + conn, &out), 0);
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
}

TEST_F(ShoalBenchTest, NfsFileAndDatasetReadBackExactlyFromGanesha) {
  const std::string script = std::string(SHOAL_SOURCE_DIR) + "/bench/nfs-ganesha.sh";
  if (!std::filesystem::exists(script)) GTEST_SKIP() << "no " << script << ": cannot start an NFS server";
  if (Shell("command -v ganesha.nfsd >/dev/null") != 0)
    GTEST_SKIP() << "NFS-Ganesha is not installed (bench/install-bench-deps.sh installs it)";
  if (geteuid() != 0) GTEST_SKIP() << "NFS-Ganesha needs root";
  // The files exist before the server starts: it caches what it has seen.
  std::string exp = dir_ + "/export", state = dir_ + "/state";
  std::filesystem::create_directories(exp);
  std::filesystem::create_directories(state);
  ASSERT_EQ(Bench("make posix --path " + exp + "/f.dat --size 6m"), 0);
  ASSERT_EQ(Bench("make posix --path " + exp + "/ds --files 30 --min-size 1 --max-size 200k"), 0);
  std::string url;
  int up = Shell(script + " up " + exp + " " + state + " 2>" + state + "/up.err | tail -1", &url);
  struct Down {
    std::string cmd;
    ~Down() { Shell(cmd); }
  } down{script + " down " + state + " >/dev/null 2>&1"};
  while (!url.empty() && (url.back() == '\n' || url.back() == ' ')) url.pop_back();
  if (up != 0 || url.rfind("nfs://", 0) != 0)
    GTEST_SKIP() << "NFS-Ganesha did not start here: " << ReadFile(state + "/up.err");
  std::string nfs = "nfs --nfs-url '" + url + "' --nfs-conns 2";
  ExpectClean(nfs + " --path /f.dat --bs 4k --qd 16", 2000, 4096);
  ExpectClean(nfs + " --path /f.dat --bs 1m --qd 4 --threads 2", 30, 1 << 20);
  ExpectClean(nfs + " --path /ds --dataset --qd 8 --threads 2", 60, 0);
}

}  // namespace
}  // namespace shoal::testing
