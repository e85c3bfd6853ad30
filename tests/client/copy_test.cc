// shoal put/get (client/cli/copy.h) against an in-process cluster with
// delayed and failing servers: byte-exact, authorised before anything is
// cut, and --verify catching what differs.
#include "client/cli/copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/client/inproc_cluster.h"

namespace shoal::cli {
namespace {

using client::Caller;

constexpr uint32_t kChunk = 1 << 20;

// Writes `n` pseudo-random bytes (a function of `seed`) to `path`, 8 MiB at a time.
void WriteRandomFile(const std::string& path, uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> block(1 << 20);
  for (uint64_t done = 0; done < n;) {
    for (auto& w : block) w = rng();
    size_t take = static_cast<size_t>(std::min<uint64_t>(n - done, block.size() * 8));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(take));
    done += take;
  }
  ASSERT_TRUE(out.good()) << path;
}

// "" when the files are equal, else where they first differ.
std::string Compare(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return "cannot open " + a + " or " + b;
  std::vector<char> ba(8 << 20), bb(8 << 20);
  for (uint64_t off = 0;; off += ba.size()) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount()) return "lengths differ near byte " + std::to_string(off);
    size_t n = static_cast<size_t>(fa.gcount());
    if (std::memcmp(ba.data(), bb.data(), n) != 0) {
      size_t i = 0;
      while (ba[i] == bb[i]) ++i;
      return "differ at byte " + std::to_string(off + i);
    }
    if (n < ba.size()) return "";
  }
}

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/copy_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(cluster_.Start());
    client::ClientOptions o = cluster_.Options();
    o.io_timeout_ms = 500;
    o.io_attempts = 6;  // backoff 40..640 ms: rides out a failure lasting a second
    client_ = cluster_.Connect(o);
    ASSERT_NE(client_, nullptr);
    ASSERT_TRUE(client_->SetLayout(root_, 1, kChunk, 3).ok());
  }
  void TearDown() override {
    client_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Local(const std::string& name) const { return dir_ + "/" + name; }

  Caller root_;  // uid 0: the tests' own files
  std::string dir_;
  testing::InprocCluster cluster_;
  std::unique_ptr<client::Client> client_;
};

// Injects faults on node 2 as each phase passes fractions of its bytes: two
// requests vanish (each costs the client a timeout, then a retry), later the
// connection breaks and stays broken for ~300 ms (the client's backoff rides
// out more than a second).
class TransientFaults {
 public:
  explicit TransientFaults(rpc::Faults& faults) : f_(faults) {}
  void Progress(const std::string& phase, uint64_t done, uint64_t total) {
    if (phase != phase_) {
      phase_ = phase;
      step_ = 0;
    }
    auto now = std::chrono::steady_clock::now();
    if (f_.fail_writes && now - broken_at_ >= std::chrono::milliseconds(300)) f_.fail_writes = false;
    if (total == 0) return;
    if (step_ == 0 && done >= total / 4) {
      f_.drop_next_frames = 2;
      ++step_;
      ++injected_;
    } else if (step_ == 1 && done >= total / 2) {
      f_.fail_writes = true;
      broken_at_ = now;
      ++step_;
      ++injected_;
    }
  }
  int injected() const { return injected_; }

 private:
  rpc::Faults& f_;
  std::string phase_;
  int step_ = 0, injected_ = 0;
  std::chrono::steady_clock::time_point broken_at_;
};

// The acceptance test: 1 GiB through put and get with one server slow
// and another failing now and then. About 15 s on two cores.
TEST_F(CopyTest, OneGiBPutAndGetAreByteExactWithASlowAndAFlakyServer) {
  const uint64_t size = (1ull << 30) + 4321;  // and a partial last chunk
  WriteRandomFile(Local("src"), size, 42);
  cluster_.FaultsFor(1).delay_ms = 2;  // every request to node 1 waits
  TransientFaults faults(cluster_.FaultsFor(2));
  CopyOptions o;
  o.progress = [&](const std::string& phase, uint64_t done, uint64_t total) { faults.Progress(phase, done, total); };

  auto put = PutFile(*client_, root_, Local("src"), "/big", o);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(*put, size);
  auto get = GetFile(*client_, root_, "/big", Local("back"), o);
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(*get, size);
  EXPECT_EQ(faults.injected(), 4);  // both faults hit both phases
  EXPECT_EQ(Compare(Local("src"), Local("back")), "");
  for (int node = 1; node <= testing::InprocCluster::kNodes; ++node)
    EXPECT_GT(cluster_.chunks(node).stats().write_bytes.load(), size / 4) << node;
}

TEST_F(CopyTest, PutByAUserWhoMayNotWriteLeavesTheFileIntact) {
  WriteRandomFile(Local("orig"), 5 * kChunk + 17, 1);
  ASSERT_TRUE(PutFile(*client_, root_, Local("orig"), "/owned", {}).ok());
  Caller stranger;
  stranger.set_uid(4321);
  stranger.set_gid(4321);
  WriteRandomFile(Local("other"), kChunk, 2);
  auto put = PutFile(*client_, stranger, Local("other"), "/owned", {});
  EXPECT_EQ(put.status().code(), proto::PERMISSION_DENIED) << put.status().ToString();
  // Every byte is still there, read straight from storage.
  ASSERT_TRUE(GetFile(*client_, root_, "/owned", Local("back"), {}).ok());
  EXPECT_EQ(Compare(Local("orig"), Local("back")), "");
}

TEST_F(CopyTest, GetChecksReadPermission) {
  WriteRandomFile(Local("secret"), 1000, 3);
  ASSERT_TRUE(PutFile(*client_, root_, Local("secret"), "/secret", {}).ok());
  proto::SetAttrReq chmod;
  chmod.set_ino(client_->Resolve(root_, "/secret")->ino());
  chmod.set_set_mode(true);
  chmod.set_mode(0600);
  ASSERT_TRUE(client_->SetAttr(chmod).ok());
  Caller stranger;
  stranger.set_uid(4321);
  stranger.set_gid(4321);
  auto get = GetFile(*client_, stranger, "/secret", Local("stolen"), {});
  EXPECT_EQ(get.status().code(), proto::PERMISSION_DENIED) << get.status().ToString();
}

TEST_F(CopyTest, VerifyPassesOnAGoodCopyAndNamesTheByteThatDiffers) {
  const uint64_t size = 7 * kChunk + 5;
  WriteRandomFile(Local("src"), size, 4);
  CopyOptions verify;
  verify.verify = true;
  std::vector<std::string> phases;
  verify.progress = [&](const std::string& phase, uint64_t, uint64_t) {
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
  };
  ASSERT_TRUE(PutFile(*client_, root_, Local("src"), "/v", verify).ok());
  EXPECT_EQ(phases, (std::vector<std::string>{"put", "verify"}));
  ASSERT_TRUE(GetFile(*client_, root_, "/v", Local("back"), verify).ok());
  EXPECT_EQ(Compare(Local("src"), Local("back")), "");

  // Someone rewrites a byte of the remote file between the copy and the
  // read-back (in the last blocks: the first ones are already being read when
  // the first progress report comes).
  const uint64_t where = 6 * kChunk + 1234;
  bool changed = false;
  verify.progress = [&](const std::string& phase, uint64_t, uint64_t) {
    if (phase != "verify" || changed) return;
    changed = true;
    auto file = client_->Resolve(root_, "/v");
    uint8_t byte = 0;
    ASSERT_TRUE(client_->Read(*file, where, 1, &byte).ok());
    byte ^= 0xff;
    ASSERT_TRUE(client_->Write(*file, where, 1, &byte).ok());
  };
  auto put = PutFile(*client_, root_, Local("src"), "/v", verify);
  EXPECT_EQ(put.status().code(), proto::CHECKSUM_MISMATCH);
  EXPECT_NE(put.status().message().find("differ at byte " + std::to_string(where)), std::string::npos)
      << put.status().ToString();

  // A get whose local copy changes under it is caught too.
  changed = false;
  verify.progress = [&](const std::string& phase, uint64_t, uint64_t) {
    if (phase != "verify" || changed) return;
    changed = true;
    int fd = ::open(Local("back2").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char byte = 0;  // flipped in the last block, which is compared last
    ASSERT_EQ(::pread(fd, &byte, 1, 7 * kChunk + 2), 1);
    byte ^= 0x55;
    ASSERT_EQ(::pwrite(fd, &byte, 1, 7 * kChunk + 2), 1);
    ::close(fd);
  };
  auto get = GetFile(*client_, root_, "/v", Local("back2"), verify);
  EXPECT_EQ(get.status().code(), proto::CHECKSUM_MISMATCH);
  EXPECT_NE(get.status().message().find("differ at byte " + std::to_string(7 * kChunk + 2)), std::string::npos)
      << get.status().ToString();
}

TEST_F(CopyTest, VerifyRefusesStandardStreams) {
  CopyOptions verify;
  verify.verify = true;
  EXPECT_EQ(GetFile(*client_, root_, "/x", "-", verify).status().code(), proto::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace shoal::cli
