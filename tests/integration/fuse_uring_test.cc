// FUSE over io_uring (client/fuse/fuse_uring.h) on a real mount: the kernel
// module's enable_uring parameter is switched on for the test and put back
// after. Each CPU's queue gets few entries, so requests outnumber entries and
// the kernel queues them; reads, writes and namespace calls must come back
// exactly as they do through /dev/fuse, and the daemon must report that the
// rings carried them.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

// The counts the daemon logs at unmount (all requests, and those that came
// straight to a blocking-call thread), or -1 when it did not.
long long RequestsServedByRings(const std::string& log, int which = 1) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex("FUSE over io_uring served ([0-9]+) requests, ([0-9]+) of them"))) return -1;
  return std::stoll(m[which]);
}

// Unmounts and waits for the daemon to exit by itself; its exit code.
int Unmount(LocalCluster& c) {
  if (Shell("fusermount3 -u " + c.mount()) != 0) return -1;
  return c.WaitExit(c.fuse_pid());
}

// Whether an established loopback TCP socket on local `port` has bytes its
// owner has not read (/proc/net/tcp: "sl local rem st tx_queue:rx_queue ...",
// addresses and queues in hex).
bool UnreadBytesAt(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, queues;
    if (!(f >> sl >> local >> remote >> st >> queues)) continue;
    size_t colon = local.find(':'), q = queues.find(':');
    if (colon == std::string::npos || q == std::string::npos || st != "01") continue;
    if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
    if (std::stoul(queues.substr(q + 1), nullptr, 16) > 0) return true;
  }
  return false;
}

// Runs the calling thread on CPU 0 (so on the kernel's queue 0) for its
// lifetime.
class OnCpu0 {
 public:
  OnCpu0() {
    sched_getaffinity(0, sizeof(old_), &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ok_ = sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~OnCpu0() { sched_setaffinity(0, sizeof(old_), &old_); }
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

std::string JoinCommand(const std::vector<std::string>& args) {
  std::string cmd = "timeout 60";
  for (const auto& a : args) cmd += " '" + a + "'";
  return cmd + " 2>&1";
}

class FuseUringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mount, module parameter)";
  }
  // Sets the module's enable_uring for the test; false on a kernel without it.
  bool SetKernelUring(bool on) {
    parameter_ = std::make_unique<FuseUringParameter>(on);
    return parameter_->available();
  }
  // shoal-fuse flags for a mount over io_uring with small queues.
  static std::vector<std::string> OverRings(int entries_per_queue, int threads_per_queue) {
    return {"--uring", "on", "--uring-entries-per-queue", std::to_string(entries_per_queue),
            "--uring-threads-per-queue", std::to_string(threads_per_queue)};
  }
  static constexpr const char* kNoUring = "this kernel has no FUSE over io_uring";

 private:
  std::unique_ptr<FuseUringParameter> parameter_;
};

TEST_F(FuseUringTest, DataAndNamespaceCallsGoThroughTheRings) {
  if (!SetKernelUring(true)) GTEST_SKIP() << kNoUring;
  LocalCluster c;
  c.set_fuse_args(OverRings(4, 2));
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string m = c.mount();

  // Whole files of sizes around the chunk and request boundaries.
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{131073}, size_t{1} << 20,
                      (size_t{3} << 20) + 17}) {
    const std::string path = m + "/f" + std::to_string(size), data = RandomString(size, size);
    ASSERT_TRUE(WriteFile(path, data)) << size;
    EXPECT_EQ(ReadFile(path), data) << size;
  }

  // Eight threads of random preads at once: more requests than the queues
  // hold entries, each answer checked against the bytes written.
  const std::string big = m + "/big";
  const std::string ref = RandomString(8u << 20, 7);
  ASSERT_TRUE(WriteFile(big, ref));
  std::atomic<int> bad{0}, done{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      int fd = open(big.c_str(), O_RDONLY);
      if (fd < 0) {
        ++bad;
        return;
      }
      std::mt19937_64 rng(t);
      std::string buf(256 << 10, '\0');
      for (int i = 0; i < 200; ++i) {
        size_t len = 1 + rng() % buf.size();
        size_t off = rng() % ref.size();
        ssize_t n = pread(fd, buf.data(), len, static_cast<off_t>(off));
        size_t want = std::min(len, ref.size() - off);
        if (n != static_cast<ssize_t>(want) || memcmp(buf.data(), ref.data() + off, want) != 0) ++bad;
        ++done;
      }
      close(fd);
    });
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0) << "of " << done.load() << " reads";

  // O_DIRECT reads and writes bypass the page cache: every one is a request.
  {
    int fd = open(big.c_str(), O_RDWR | O_DIRECT);
    ASSERT_GE(fd, 0) << strerror(errno);
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, 4096, 1 << 20), 0);
    std::string patch = RandomString(1 << 20, 99);
    memcpy(p, patch.data(), patch.size());
    EXPECT_EQ(pwrite(fd, p, 1 << 20, 2 << 20), 1 << 20);
    memset(p, 0, 1 << 20);
    EXPECT_EQ(pread(fd, p, 1 << 20, 2 << 20), 1 << 20);
    EXPECT_EQ(memcmp(p, patch.data(), patch.size()), 0);
    free(p);
    close(fd);
  }

  // A directory listing that takes several READDIR requests.
  // Made from one CPU, so that each call's next request comes to the thread
  // that answered it (counted below).
  ASSERT_EQ(mkdir((m + "/dir").c_str(), 0755), 0);
  std::set<std::string> made;
  {
    OnCpu0 pin;
    for (int i = 0; i < 300; ++i) {
      std::string name = "entry-with-a-longish-name-" + std::to_string(i);
      ASSERT_TRUE(WriteFile(m + "/dir/" + name, "x")) << i;
      made.insert(name);
    }
  }
  std::set<std::string> listed;
  DIR* d = opendir((m + "/dir").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) listed.insert(e->d_name);
  }
  closedir(d);
  EXPECT_EQ(listed, made);

  // Namespace calls and their errors.
  EXPECT_EQ(rename((m + "/f1").c_str(), (m + "/dir/moved").c_str()), 0);
  EXPECT_EQ(ReadFile(m + "/dir/moved"), RandomString(1, 1));
  EXPECT_EQ(unlink((m + "/f1").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(symlink("dir/moved", (m + "/link").c_str()), 0);
  char target[64] = {};
  EXPECT_EQ(readlink((m + "/link").c_str(), target, sizeof(target) - 1), 9);
  EXPECT_STREQ(target, "dir/moved");
  EXPECT_EQ(setxattr((m + "/f4096").c_str(), "user.tag", "v1", 2, 0), 0);
  char value[8] = {};
  EXPECT_EQ(getxattr((m + "/f4096").c_str(), "user.tag", value, sizeof(value)), 2);
  EXPECT_STREQ(value, "v1");
  {
    int fd = open((m + "/f4096").c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(write(fd, "short", 5), 5);
    close(fd);
  }
  EXPECT_EQ(ReadFile(m + "/f4096"), "short");
  struct stat st{};
  EXPECT_EQ(stat((m + "/f4096").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(unlink((m + "/dir/moved").c_str()), 0);
  EXPECT_EQ(rmdir((m + "/dir").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);

  ASSERT_EQ(Unmount(c), 0) << c.Log("fuse");
  const std::string log = c.Log("fuse");
  EXPECT_GT(RequestsServedByRings(log), 1000) << log;
  // 300 creates one after another: after the first, each call's next comes
  // to the thread that answered it, not through the ring thread.
  EXPECT_GT(RequestsServedByRings(log, 2), 300) << log;
  // No ring failed, and none fell back to /dev/fuse.
  EXPECT_EQ(log.find("FUSE ring "), std::string::npos) << log;
  EXPECT_EQ(log.find("could not start"), std::string::npos) << log;
}

// One ring thread per queue: a metadata call stuck on meta must not hold up
// the reads queued behind it on the same CPU.
TEST_F(FuseUringTest, AStuckMetadataCallDoesNotHoldUpReadsOnItsCpu) {
  if (!SetKernelUring(true)) GTEST_SKIP() << kNoUring;
  LocalCluster c;
  c.set_fuse_args(OverRings(8, 1));
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string path = c.mount() + "/data", ref = RandomString(1 << 20, 3);
  ASSERT_TRUE(WriteFile(path, ref));
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);

  // Everything below runs on CPU 0, so on the kernel's queue 0.
  auto pin = std::make_unique<OnCpu0>();
  ASSERT_TRUE(pin->ok());
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  // Metadata calls first, so that blocking-call threads park entries of this
  // queue (each the one it answered last) and the kernel may put the stuck
  // call in one of them.
  for (int i = 0; i < 50; ++i) {
    const std::string f = c.mount() + "/park" + std::to_string(i);
    ASSERT_TRUE(WriteFile(f, "p"));
    ASSERT_EQ(unlink(f.c_str()), 0);
  }

  ASSERT_EQ(kill(c.meta_pid(), SIGSTOP), 0);
  std::atomic<bool> stat_done{false};
  std::thread stuck([&] {
    sched_setaffinity(0, sizeof(one), &one);
    struct stat st;
    stat((c.mount() + "/not-looked-up-yet").c_str(), &st);  // a LOOKUP that waits on meta
    stat_done = true;
  });
  // Give the LOOKUP time to reach the daemon: wait until meta has a request
  // it cannot answer (its socket's receive queue holds bytes).
  const int meta_port = std::stoi(c.meta_address().substr(c.meta_address().rfind(':') + 1));
  ASSERT_TRUE(WaitFor([&] { return !stat_done && UnreadBytesAt(meta_port); }, std::chrono::seconds(10)));
  int good = 0;
  std::string buf(64 << 10, '\0');
  for (int i = 0; i < 50; ++i) {
    off_t off = static_cast<off_t>((i * 7919 % 16) * (64 << 10));
    if (pread(fd, buf.data(), buf.size(), off) == static_cast<ssize_t>(buf.size()) &&
        memcmp(buf.data(), ref.data() + off, buf.size()) == 0)
      ++good;
  }
  const bool still_stuck = !stat_done;
  pin.reset();
  EXPECT_EQ(good, 50);
  EXPECT_TRUE(still_stuck) << "the reads came back only after the stuck metadata call did";

  // Stopping the daemon while that call is still out: it waits for the call
  // before its client goes, and exits cleanly.
  close(fd);
  ASSERT_EQ(kill(c.fuse_pid(), SIGTERM), 0);
  kill(c.meta_pid(), SIGCONT);
  EXPECT_EQ(c.WaitExit(c.fuse_pid()), 0) << c.Log("fuse");
  stuck.join();
  EXPECT_GT(RequestsServedByRings(c.Log("fuse")), 50) << c.Log("fuse");
}

TEST_F(FuseUringTest, OnWithoutTheKernelsConsentFailsAndAutoFallsBack) {
  if (!SetKernelUring(false)) GTEST_SKIP() << kNoUring;
  LocalCluster c;
  ASSERT_TRUE(c.Start(/*mount=*/false)) << c.error();

  // "on" refuses to mount, and says what to switch on.
  std::string out;
  int rc = Shell(JoinCommand(c.FuseCommand({"--uring", "on"})), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("enable_uring"), std::string::npos) << out;
  EXPECT_NE(Shell("mountpoint -q " + c.mount()), 0) << "nothing is mounted";

  // "auto" mounts over /dev/fuse and works.
  ASSERT_TRUE(c.StartFuse({"--uring", "auto"})) << c.error();
  ASSERT_TRUE(WriteFile(c.mount() + "/a", "through /dev/fuse"));
  EXPECT_EQ(ReadFile(c.mount() + "/a"), "through /dev/fuse");
  ASSERT_EQ(Unmount(c), 0) << c.Log("fuse");
  EXPECT_EQ(RequestsServedByRings(c.Log("fuse")), -1) << c.Log("fuse");
}

TEST_F(FuseUringTest, BadOptionsAreRefusedBeforeMounting) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(/*mount=*/false)) << c.error();
  for (auto args : std::vector<std::vector<std::string>>{{"--uring", "sometimes"},
                                                         {"--uring", "auto", "--uring-entries-per-queue", "0"},
                                                         {"--uring", "auto", "--uring-threads-per-queue", "0"}}) {
    std::string out;
    EXPECT_NE(Shell(JoinCommand(c.FuseCommand(args)), &out), 0) << args[1];
    EXPECT_NE(out.find("uring"), std::string::npos) << out;
  }
  EXPECT_NE(Shell("mountpoint -q " + c.mount()), 0) << "nothing is mounted";
}

}  // namespace
}  // namespace shoal::testing
