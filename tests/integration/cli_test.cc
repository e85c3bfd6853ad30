// The shoal command line and deploy/local-cluster.sh, run as a user would.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

void WriteRandom(const std::string& path, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << s;
}

TEST(CliTest, PutGetLsStatLayoutAndStatus) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string cli = c.cli();
  const std::string src = c.dir() + "/src.bin", back = c.dir() + "/back.bin";
  WriteRandom(src, (9 << 20) + 123, 4);

  std::string out;
  ASSERT_EQ(Shell(cli + " put " + src + " /put.bin", &out), 0) << out;
  ASSERT_EQ(Shell(cli + " get /put.bin " + back, &out), 0) << out;
  EXPECT_EQ(Shell("cmp " + src + " " + back), 0);
  EXPECT_EQ(Shell("cmp " + src + " " + c.mount() + "/put.bin"), 0);  // and the mount sees it

  ASSERT_EQ(mkdir((c.mount() + "/wide").c_str(), 0755), 0);
  out.clear();
  ASSERT_EQ(Shell(cli + " layout set /wide --chunk-size 256K --stripe 2", &out), 0) << out;
  EXPECT_NE(out.find("chunk_size=262144 stripe=2"), std::string::npos) << out;
  EXPECT_NE(Shell(cli + " layout set /wide --chunk-size 1000 2>&1"), 0);  // not a power of two
  WriteRandom(c.mount() + "/wide/f", 1 << 20, 5);
  out.clear();
  ASSERT_EQ(Shell(cli + " stat /wide/f", &out), 0);
  EXPECT_NE(out.find("layout: chunk 262144, stripe 2"), std::string::npos) << out;
  // Placement per node and target: 4 chunks, 2 on each of the 2 chains' targets.
  EXPECT_NE(out.find("placement: 4 chunks on 2 targets, 2 nodes"), std::string::npos) << out;
  EXPECT_NE(out.find("     2 chunks        524288 bytes (512.0 KiB)"), std::string::npos) << out;
  EXPECT_EQ(out.find("  3  chain "), std::string::npos) << out;  // the full list only with --chunks
  out.clear();
  ASSERT_EQ(Shell(cli + " stat --chunks /wide/f", &out), 0);
  EXPECT_NE(out.find("  3  chain "), std::string::npos) << out;  // 4 chunks listed

  out.clear();
  ASSERT_EQ(Shell(cli + " ls -l /", &out), 0);
  EXPECT_NE(out.find("put.bin"), std::string::npos) << out;
  EXPECT_NE(out.find("dir  0755"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(Shell(cli + " status", &out), 0);
  for (int node = 1; node <= LocalCluster::kNodes; ++node)
    EXPECT_NE(out.find("node " + std::to_string(node) + "  127.0.0.1:"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n') > 8, true) << out;
  // The same state through the metrics endpoints.
  EXPECT_EQ(c.Metric(0, "shoal_meta_nodes{state=\"online\"}"), 3);
  EXPECT_GT(c.Metric(0, "shoal_meta_requests_total{method=\"META_CREATE\"}"), 0);
  for (int node = 1; node <= LocalCluster::kNodes; ++node)
    EXPECT_GT(c.Metric(node, "shoal_storage_read_seconds_count"), 0) << node;

  // Errors are clear and exit non-zero.
  out.clear();
  EXPECT_NE(Shell(cli + " stat /nope 2>&1", &out), 0);
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
  EXPECT_NE(Shell(cli + " --cluster-key-file /nonexistent status 2>/dev/null"), 0);
}

TEST(CliTest, VerifyProgressStreamsAndConfigDiscovery) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(/*mount=*/false)) << c.error();
  const std::string cli = c.cli();
  const std::string src = c.dir() + "/src.bin", back = c.dir() + "/back.bin";
  WriteRandom(src, (21 << 20) + 5, 9);

  // Piped: no progress line, only the summary.
  std::string out;
  ASSERT_EQ(Shell(cli + " put --verify " + src + " /v.bin 2>&1", &out), 0) << out;
  EXPECT_NE(out.find(", verified"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  out.clear();
  ASSERT_EQ(Shell(cli + " get --verify /v.bin " + back + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find(", verified"), std::string::npos) << out;
  EXPECT_EQ(Shell("cmp " + src + " " + back), 0);

  // On a terminal (script(1) gives it one): a progress line redrawn in place.
  out.clear();
  ASSERT_EQ(Shell("script -qec '" + cli + " get /v.bin " + back + "' /dev/null", &out), 0) << out;
  EXPECT_NE(out.find("\rget /v.bin: "), std::string::npos) << out;
  EXPECT_NE(out.find("/s"), std::string::npos) << out;
  EXPECT_EQ(Shell("cmp " + src + " " + back), 0);

  // Standard input and output.
  ASSERT_EQ(Shell("cat " + src + " | " + cli + " put - /stdin.bin >/dev/null"), 0);
  EXPECT_EQ(Shell(cli + " get /stdin.bin - 2>/dev/null | cmp - " + src), 0);
  EXPECT_NE(Shell(cli + " get --verify /stdin.bin - >/dev/null 2>&1"), 0);

  // The config through SHOAL_CONFIG, no flags; a named file that is missing is an error that says so.
  const std::string conf = c.dir() + "/client.toml";
  std::ofstream(conf) << "meta_address = '" << c.meta_address() << "'\ncluster_id = 'test'\ncluster_key_file = '"
                      << c.key_file() << "'\n";
  const std::string bare = std::string(SHOAL_BIN_DIR) + "/client/cli/shoal";
  out.clear();
  ASSERT_EQ(Shell("SHOAL_CONFIG=" + conf + " " + bare + " ls /", &out), 0) << out;
  EXPECT_NE(out.find("stdin.bin"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(Shell("SHOAL_CONFIG=" + c.dir() + "/nope.toml " + bare + " ls / 2>&1", &out), 0);
  EXPECT_NE(out.find("SHOAL_CONFIG=" + c.dir() + "/nope.toml: no such file"), std::string::npos) << out;
}

TEST(CliTest, MountShowsAsShoal) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  std::string mounts;
  ASSERT_EQ(Shell("cat /proc/mounts", &mounts), 0);
  EXPECT_NE(mounts.find("shoal " + c.mount() + " fuse.shoal "), std::string::npos) << mounts;
}

TEST(LocalClusterScriptTest, UpStatusDown) {
  const std::string home = "/tmp/shoal-lc-" + std::to_string(getpid());
  std::filesystem::remove_all(home);
  // Fresh ports (the script uses port..port+3 and port+100..port+103), away
  // from the default 9000 of a developer's own cluster.
  int port = FreePort();
  while (port > 30000) port = FreePort();
  // SHOAL_LINK_DIR: where `up` links the shoal CLI (default /usr/local/bin; not touched here).
  std::string env = "SHOAL_HOME=" + home + " SHOAL_PORT=" + std::to_string(port) + " SHOAL_BUILD=" SHOAL_BIN_DIR
                    " SHOAL_LINK_DIR=" + home + "/bin ";
  std::string script = std::string(SHOAL_SOURCE_DIR) + "/deploy/local-cluster.sh";
  std::string out;
  int rc = Shell(env + script + " up 2>&1", &out);
  struct Down {
    std::string cmd;
    ~Down() { Shell(cmd); }
  } down{env + script + " down >/dev/null 2>&1; rm -rf " + home};
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(home + "/mnt"), std::string::npos) << out;
  WriteRandom(home + "/local.bin", 3 << 20, 8);
  EXPECT_EQ(Shell("cp " + home + "/local.bin " + home + "/mnt/ && cmp " + home + "/local.bin " + home + "/mnt/local.bin"), 0);
  // `shoal` is on the PATH (the link `up` made) and finds this cluster's config through SHOAL_HOME.
  out.clear();
  EXPECT_EQ(Shell("SHOAL_HOME=" + home + " PATH=" + home + "/bin:$PATH shoal ls / 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("local.bin"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(Shell(env + script + " status 2>&1", &out), 0);
  EXPECT_NE(out.find("meta: running"), std::string::npos) << out;
  EXPECT_NE(out.find("mounted on"), std::string::npos) << out;
  // `up` again is a no-op that still answers with the mount point.
  out.clear();
  EXPECT_EQ(Shell(env + script + " up 2>&1", &out), 0) << out;
  out.clear();
  ASSERT_EQ(Shell(env + script + " down 2>&1", &out), 0) << out;
  std::string mounts;
  Shell("cat /proc/mounts", &mounts);
  EXPECT_EQ(mounts.find(home + "/mnt"), std::string::npos);
  out.clear();
  Shell(env + script + " status 2>&1", &out);
  EXPECT_EQ(out.find(": running"), std::string::npos) << out;
}

}  // namespace
}  // namespace shoal::testing
