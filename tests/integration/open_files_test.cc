// Open files on the real mount: an unlinked file stays readable and writable
// through its open handles (on the mount and on another client) far beyond
// the reclaim delay, and its chunks go after the last close; a client killed
// with -9 while holding a file open releases it when its lease passes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

constexpr int64_t kReclaimDelayMs = 300;  // the cluster's reclaim passes run every 200 ms

int ChunkFiles(const LocalCluster& c) {
  int n = 0;
  for (int node = 1; node <= LocalCluster::kNodes; ++node) {
    std::string d = c.target_dir(LocalCluster::target_of(node)) + "/chunks";
    if (!std::filesystem::exists(d)) continue;
    for (auto& e : std::filesystem::recursive_directory_iterator(d)) n += e.is_regular_file();
  }
  return n;
}

std::string PRead(int fd, size_t len, off_t off) {
  std::string out(len, '\0');
  ssize_t n = pread(fd, out.data(), len, off);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// Holds `ok` true for `ms` of real time while checking `cond` (what must keep
// holding for a while, e.g. while reclaim passes run); false at the first miss.
bool HoldsFor(int64_t ms, const std::function<bool()>& cond) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (!cond()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return cond();
}

TEST(OpenFilesTest, AnUnlinkedOpenFileStaysReadableAndWritableUntilItsLastClose) {
  LocalCluster c;
  c.set_reclaim_delay_ms(kReclaimDelayMs);
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string path = c.mount() + "/held";
  const std::string data = RandomString(3 << 20, 7);  // 3 chunks of 1 MiB
  ASSERT_TRUE(WriteFile(path, data));
  const int chunks = ChunkFiles(c);
  ASSERT_EQ(chunks, 3);

  int rw = open(path.c_str(), O_RDWR);
  ASSERT_GE(rw, 0) << strerror(errno);
  int ro = open(path.c_str(), O_RDONLY);
  ASSERT_GE(ro, 0) << strerror(errno);
  // Another client holds it open too, through libshoal.
  auto other = c.NewClient();
  ASSERT_NE(other, nullptr);
  proto::Caller root;
  auto attr = other->Resolve(root, "/held");
  ASSERT_TRUE(attr.ok());
  uint64_t handle = 0;
  ASSERT_TRUE(other->Open(root, attr->ino(), O_RDONLY, &handle).ok());

  ASSERT_EQ(unlink(path.c_str()), 0) << strerror(errno);
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(fstat(rw, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_TRUE(WaitFor([&] { return c.Metric(0, "shoal_meta_orphans") == 1; }));

  // Written through the unlinked file, read back through the other handle.
  const std::string patch = "written after the unlink";
  ASSERT_EQ(pwrite(rw, patch.data(), patch.size(), 1000), static_cast<ssize_t>(patch.size()));
  ASSERT_EQ(fsync(rw), 0);
  std::string want = data;
  want.replace(1000, patch.size(), patch);

  // Twenty times the reclaim delay, with a reclaim pass every 200 ms: every
  // byte stays readable through every handle and no chunk goes.
  bool held = HoldsFor(20 * kReclaimDelayMs, [&] {
    return ChunkFiles(c) == chunks && PRead(ro, 4096, 0) == want.substr(0, 4096) &&
           PRead(rw, 4096, (2 << 20) + 5) == want.substr((2 << 20) + 5, 4096);
  });
  EXPECT_TRUE(held) << ChunkFiles(c) << " chunk files";
  EXPECT_EQ(PRead(ro, want.size(), 0), want);
  auto a = other->GetAttr(attr->ino());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  std::string via_other(want.size(), '\0');
  auto n = other->Read(*a, 0, via_other.size(), reinterpret_cast<uint8_t*>(via_other.data()));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(via_other, want);

  // Closing the mount's handles is not the last close: the other client holds it.
  ASSERT_EQ(close(rw), 0);
  ASSERT_EQ(close(ro), 0);
  EXPECT_TRUE(HoldsFor(5 * kReclaimDelayMs, [&] { return ChunkFiles(c) == chunks; }));
  ASSERT_TRUE(other->Release(attr->ino(), handle).ok());
  EXPECT_TRUE(WaitFor([&] { return ChunkFiles(c) == 0; })) << ChunkFiles(c) << " chunk files remain";
  EXPECT_EQ(c.Metric(0, "shoal_meta_orphans"), 0);
}

TEST(OpenFilesTest, AClientKilledWithAFileOpenReleasesItAfterItsLease) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string path = c.mount() + "/held";
  ASSERT_TRUE(WriteFile(path, RandomString(2 << 20, 3)));
  const int chunks = ChunkFiles(c);
  ASSERT_EQ(chunks, 2);
  const int64_t kLeaseMs = 1500;

  // The holder: a process of its own with a libshoal client that opens the
  // file, says so, and waits to be killed.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  client::ClientOptions opts = c.ClientOptions();
  opts.session_lease_ms = kLeaseMs;
  pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(ready[0]);
    auto cl = client::Client::Connect(opts);
    if (!cl.ok()) _exit(2);
    proto::Caller root;
    auto a = (*cl)->Resolve(root, "/held");
    uint64_t handle = 0;
    if (!a.ok() || !(*cl)->Open(root, a->ino(), O_RDONLY, &handle).ok()) _exit(3);
    char one = 1;
    if (write(ready[1], &one, 1) != 1) _exit(4);
    for (;;) pause();
  }
  close(ready[1]);
  char got = 0;
  ASSERT_EQ(read(ready[0], &got, 1), 1) << "the holder did not open the file";
  close(ready[0]);
  const double sessions = c.Metric(0, "shoal_meta_sessions");

  ASSERT_EQ(unlink(path.c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return c.Metric(0, "shoal_meta_orphans") == 1; }));
  // While the holder lives (and renews), two of its leases pass and nothing goes.
  EXPECT_TRUE(HoldsFor(2 * kLeaseMs, [&] { return ChunkFiles(c) == chunks; }));

  ASSERT_EQ(kill(holder, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(holder, &status, 0), holder);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(WaitFor([&] { return ChunkFiles(c) == 0; })) << ChunkFiles(c) << " chunk files remain";
  EXPECT_EQ(c.Metric(0, "shoal_meta_orphans"), 0);
  EXPECT_EQ(c.Metric(0, "shoal_meta_sessions"), sessions - 1);
}

}  // namespace
}  // namespace shoal::testing
