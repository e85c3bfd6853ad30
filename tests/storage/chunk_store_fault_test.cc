// The O_DIRECT chunk store over a failing disk (storage/fault_file_env.h):
// every injected fault gives a clear error and leaves each chunk at its old
// bytes or (only when the commit itself could not be made durable) its new
// ones; and after a power cut at any point every acknowledged write is there,
// and nothing that was never written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "storage/chunk_store.h"
#include "storage/fault_file_env.h"
#include "tests/common/eventually.h"

namespace shoal::storage {
namespace {

using Fault = FaultFileEnv::Fault;
constexpr uint32_t kChunk = 64 << 10;

// A chunk's bytes as a reader sees them (zeros past what was written).
using ChunkBytes = std::string;
ChunkBytes Zeros() { return ChunkBytes(kChunk, '\0'); }
ChunkBytes Overlay(ChunkBytes s, uint32_t off, const std::string& data) {
  s.replace(off, data.size(), data);
  return s;
}
ChunkBytes CutTo(ChunkBytes s, uint64_t keep) {
  if (keep < kChunk) std::fill(s.begin() + static_cast<ptrdiff_t>(keep), s.end(), '\0');
  return s;
}
std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() | 1);  // never zero: a hole cannot pass for written bytes
  return s;
}
// Where two chunk images first differ, for a readable failure.
std::string Diff(const ChunkBytes& got, const ChunkBytes& want) {
  auto m = std::mismatch(got.begin(), got.end(), want.begin());
  if (m.first == got.end()) return "equal";
  return "first difference at byte " + std::to_string(m.first - got.begin());
}

// A target directory with its fault env and store.
class Target {
 public:
  // `journal`: new small chunks go through the write journal, as they do in
  // a served target; false: every write goes to its chunk file at once.
  explicit Target(std::string root, bool journal = true) : root_(std::move(root)), journal_(journal) {
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    env_ = std::make_unique<FaultFileEnv>(RealFileEnv(), root_);
  }
  ~Target() {
    store_.reset();
    env_.reset();
    std::filesystem::remove_all(root_);
  }

  Status Open() {
    UringOptions opts;
    opts.env = env_.get();
    // A small journal (the env reads a file whole at every sync), and no
    // applying in the background: every call an operation makes is its own,
    // so a count of calls means the same every run, and a power cut finds
    // journaled writes still unapplied (replayed at reopen).
    opts.journal_bytes = journal_ ? 256 << 10 : 0;
    opts.journal_apply_delay_ms = 3600 * 1000;
    auto s = OpenUringChunkStore(root_, opts);
    if (!s.ok()) return s.status();
    store_ = std::move(*s);
    return Status::OK();
  }
  // The power cut: the store goes (the process dies), the disk forgets what
  // was not durable, the store restarts.
  Status CrashAndReopen() {
    store_.reset();
    RETURN_IF_ERROR(env_->Crash());
    return Open();
  }

  Result<uint64_t> Write(uint64_t ino, uint64_t idx, uint32_t off, const std::string& data) {
    ChunkWrite w;
    w.inode = ino;
    w.index = idx;
    w.offset = off;
    w.data = reinterpret_cast<const uint8_t*>(data.data());
    w.length = static_cast<uint32_t>(data.size());
    w.chunk_size = kChunk;
    return store_->Write(w);
  }
  Result<ChunkBytes> Read(uint64_t ino, uint64_t idx) {
    ReadOp op;
    op.inode = ino;
    op.index = idx;
    op.length = kChunk;
    op.chunk_size = kChunk;
    std::promise<void> p;
    store_->Read({&op}, [&] { p.set_value(); });
    if (p.get_future().wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      return Error(proto::TIMEOUT, "read did not complete");
    if (!op.status.ok()) return op.status;
    return ChunkBytes(reinterpret_cast<const char*>(op.data), kChunk);
  }
  std::vector<std::string> PendingFiles() const {
    std::vector<std::string> names;
    for (auto& e : std::filesystem::directory_iterator(root_ + "/pending")) names.push_back(e.path().filename());
    return names;
  }

  const std::string& root() const { return root_; }
  FaultFileEnv& env() { return *env_; }
  ChunkStore& store() { return *store_; }

 private:
  std::string root_;
  bool journal_;
  std::unique_ptr<FaultFileEnv> env_;
  std::unique_ptr<ChunkStore> store_;
};

std::string TestDir(const std::string& suffix = "") {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::replace(name.begin(), name.end(), '/', '_');
  return std::filesystem::path(::testing::TempDir() + "/csf_" + std::to_string(getpid()) + "_" + name + suffix)
      .lexically_normal()
      .string();
}

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    ::shoal::Status _s = (expr);                         \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

// ---------------------------------------------------------------------------
// Each fault, on one write.

struct FaultCase {
  Fault fault;
  ErrorCode code;
  const char* name;
};
void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }
const FaultCase kFaultCases[] = {
    {Fault::kWriteNoSpace, proto::NO_SPACE, "WriteNoSpace"},
    {Fault::kWriteIoError, proto::IO_ERROR, "WriteIoError"},
    {Fault::kShortWrite, proto::IO_ERROR, "ShortWrite"},
    {Fault::kSyncIoError, proto::IO_ERROR, "SyncIoError"},
    {Fault::kSyncDirIoError, proto::IO_ERROR, "SyncDirIoError"},
    {Fault::kRenameIoError, proto::IO_ERROR, "RenameIoError"},
    {Fault::kCreateNoSpace, proto::NO_SPACE, "CreateNoSpace"},
};

// Parameters: the fault; whether the write is the first of its inode
// (creates the inode's directory) or rewrites a committed chunk; and whether
// the target journals new small chunks (then only the faults of a file's
// writes and syncs can meet the write: the journal's).
class WriteFaultTest : public ::testing::TestWithParam<std::tuple<FaultCase, bool, bool>> {};

TEST_P(WriteFaultTest, ClearErrorOldOrCommittedBytesAndTheNextWriteSucceeds) {
  const auto [fc, first_write, journal] = GetParam();
  Target t(TestDir(), journal);
  ASSERT_OK(t.Open());
  std::mt19937_64 rng(42);
  const uint64_t ino = 0x1234;
  ChunkBytes acked = Zeros();
  if (!first_write) {
    std::string a = RandomBytes(rng, kChunk);
    ASSERT_TRUE(t.Write(ino, 0, 0, a).ok());
    acked = a;
  }

  t.env().InjectFault(fc.fault, /*after=*/0, /*times=*/1);
  const std::string b = RandomBytes(rng, 20000);
  auto failed = t.Write(ino, 0, 5000, b);
  ASSERT_FALSE(failed.ok()) << fc.name;
  EXPECT_EQ(t.env().fired(fc.fault), 1u);
  EXPECT_EQ(failed.status().code(), fc.code) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find(t.root()), std::string::npos)
      << "the error names no path: " << failed.status().ToString();
  EXPECT_TRUE(t.PendingFiles().empty()) << "a failed write left its pending version";

  // Never a mix: the old bytes, or the new ones when only the commit's
  // durability failed.
  const ChunkBytes with_b = Overlay(acked, 5000, b);
  auto now = t.Read(ino, 0);
  ASSERT_TRUE(now.ok()) << now.status().ToString();
  if (fc.fault == Fault::kSyncDirIoError)
    EXPECT_TRUE(*now == acked || *now == with_b) << Diff(*now, acked);
  else
    EXPECT_TRUE(*now == acked) << Diff(*now, acked);

  // The fault cleared, the next write succeeds and survives a power cut.
  const std::string c = RandomBytes(rng, 10000);
  ASSERT_TRUE(t.Write(ino, 0, 30000, c).ok());
  const ChunkBytes want = Overlay(*now, 30000, c);
  auto after = t.Read(ino, 0);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after == want) << Diff(*after, want);

  ASSERT_OK(t.CrashAndReopen());
  EXPECT_TRUE(t.PendingFiles().empty());
  auto durable = t.Read(ino, 0);
  ASSERT_TRUE(durable.ok()) << durable.status().ToString();
  EXPECT_TRUE(*durable == want) << "acknowledged write lost in a crash: " << Diff(*durable, want);
}

std::string WriteFaultName(const ::testing::TestParamInfo<std::tuple<FaultCase, bool, bool>>& info) {
  return std::string(std::get<0>(info.param).name) + (std::get<1>(info.param) ? "_FirstWrite" : "_Rewrite");
}
INSTANTIATE_TEST_SUITE_P(Faults, WriteFaultTest,
                         ::testing::Combine(::testing::ValuesIn(kFaultCases), ::testing::Bool(), ::testing::Values(false)),
                         WriteFaultName);
INSTANTIATE_TEST_SUITE_P(JournaledFaults, WriteFaultTest,
                         ::testing::Combine(::testing::ValuesIn(kFaultCases, kFaultCases + 4), ::testing::Bool(),
                                            ::testing::Values(true)),
                         WriteFaultName);

// A new chunk whose directory sync failed is at its name but not durable; a
// second write that fails too must not have listed it (a listed chunk whose
// file a power cut takes reads as lost, not as the hole it is).
TEST(WriteListingFaultTest, AChunkNotYetDurableIsNotListedByAFailedRewrite) {
  Target t(TestDir(), /*journal=*/false);
  ASSERT_OK(t.Open());
  std::mt19937_64 rng(7);
  const uint64_t ino = 0x4321;
  // The first write of the inode syncs its shard directory (made durable),
  // then its inode directory: that second sync fails.
  t.env().InjectFault(Fault::kSyncDirIoError, /*after=*/1, /*times=*/1);
  const std::string a = RandomBytes(rng, 8000);
  ASSERT_FALSE(t.Write(ino, 0, 0, a).ok());
  ASSERT_EQ(t.env().fired(Fault::kSyncDirIoError), 1u);
  // The next write finds that version at its name and fails as well.
  t.env().InjectFault(Fault::kWriteIoError, 0, 1);
  const std::string b = RandomBytes(rng, 3000);
  ASSERT_FALSE(t.Write(ino, 0, 100, b).ok());

  ASSERT_OK(t.CrashAndReopen());
  auto now = t.Read(ino, 0);
  ASSERT_TRUE(now.ok()) << "nothing acknowledged was lost: " << now.status().ToString();
  const ChunkBytes first = Overlay(Zeros(), 0, a);
  EXPECT_TRUE(*now == Zeros() || *now == first) << Diff(*now, Zeros());
}

// ---------------------------------------------------------------------------
// Truncate and remove under each fault.

class TruncateFaultTest : public ::testing::TestWithParam<std::tuple<FaultCase, uint64_t>> {};

TEST_P(TruncateFaultTest, EachChunkOldOrCutAndTheRetryIsDurable) {
  const auto [fc, length] = GetParam();
  Target t(TestDir());
  ASSERT_OK(t.Open());
  std::mt19937_64 rng(7);
  const uint64_t ino = 77;
  std::vector<ChunkBytes> before, cut;
  for (uint64_t idx = 0; idx < 4; ++idx) {
    before.push_back(RandomBytes(rng, kChunk));
    ASSERT_TRUE(t.Write(ino, idx, 0, before.back()).ok());
    uint64_t start = idx * kChunk;
    cut.push_back(length <= start ? Zeros() : CutTo(before.back(), length - start));
  }

  t.env().InjectFault(fc.fault, 0, 1);
  Status st = t.store().Truncate(ino, length, kChunk);
  if (t.env().fired(fc.fault) > 0) {
    EXPECT_FALSE(st.ok());
    if (!st.ok()) {
      EXPECT_EQ(st.code(), fc.code) << st.ToString();
      EXPECT_NE(st.message().find(t.root()), std::string::npos) << st.ToString();
    }
  } else {
    EXPECT_TRUE(st.ok()) << st.ToString();  // the fault has nothing to hit in this truncate
  }
  for (uint64_t idx = 0; idx < 4; ++idx) {
    auto now = t.Read(ino, idx);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == before[idx] || *now == cut[idx]) << "chunk " << idx << ": " << Diff(*now, cut[idx]);
  }
  t.env().ClearFaults();
  ASSERT_OK(t.store().Truncate(ino, length, kChunk));
  ASSERT_OK(t.CrashAndReopen());
  for (uint64_t idx = 0; idx < 4; ++idx) {
    auto now = t.Read(ino, idx);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == cut[idx]) << "acknowledged truncate undone by a crash, chunk " << idx << ": "
                                  << Diff(*now, cut[idx]);
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, TruncateFaultTest,
                         ::testing::Combine(::testing::ValuesIn(kFaultCases),
                                            ::testing::Values(uint64_t{0}, uint64_t{kChunk + 10000})),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_To" +
                                  std::to_string(std::get<1>(info.param));
                         });

TEST(RemoveFaultTest, AFailedRemoveThenARetryIsDurable) {
  Target t(TestDir());
  ASSERT_OK(t.Open());
  std::mt19937_64 rng(9);
  const uint64_t ino = 99;
  std::vector<ChunkBytes> before;
  for (uint64_t idx = 0; idx < 3; ++idx) {
    before.push_back(RandomBytes(rng, kChunk));
    ASSERT_TRUE(t.Write(ino, idx, 0, before.back()).ok());
  }
  t.env().InjectFault(Fault::kSyncDirIoError, 0, 1);
  Status st = t.store().Remove(ino);
  EXPECT_EQ(st.code(), proto::IO_ERROR) << st.ToString();
  EXPECT_NE(st.message().find(t.root()), std::string::npos) << st.ToString();
  for (uint64_t idx = 0; idx < 3; ++idx) {
    auto now = t.Read(ino, idx);
    ASSERT_TRUE(now.ok());
    EXPECT_TRUE(*now == before[idx] || *now == Zeros()) << Diff(*now, Zeros());
  }
  ASSERT_OK(t.store().Remove(ino));
  ASSERT_OK(t.CrashAndReopen());
  for (uint64_t idx = 0; idx < 3; ++idx) {
    auto now = t.Read(ino, idx);
    ASSERT_TRUE(now.ok());
    EXPECT_TRUE(*now == Zeros()) << "removed chunk " << idx << " came back after a crash";
  }
}

// The batched remove of the reclaimer: a shard sync that fails fails the
// request; every chunk then reads as before or as a hole, and a retry makes
// the removal durable.
TEST(RemoveFaultTest, AFailedRemoveOfManyThenARetryIsDurable) {
  Target t(TestDir(), /*journal=*/false);  // the faults are meant for the removal's own calls
  ASSERT_OK(t.Open());
  std::mt19937_64 rng(10);
  const std::vector<uint64_t> inodes = {99, 100, 355};  // 99 and 355 share a shard
  std::map<uint64_t, ChunkBytes> before;
  for (uint64_t ino : inodes) {
    before[ino] = RandomBytes(rng, kChunk);
    ASSERT_TRUE(t.Write(ino, 0, 0, before[ino]).ok());
  }
  t.env().InjectFault(Fault::kSyncDirIoError, 0, 1);
  std::vector<uint64_t> failed;
  Status st = t.store().RemoveMany(inodes, &failed);
  EXPECT_EQ(st.code(), proto::IO_ERROR) << st.ToString();
  std::sort(failed.begin(), failed.end());
  EXPECT_EQ(failed, (std::vector<uint64_t>{99, 355})) << "the inodes of the shard whose sync failed, no others";
  for (uint64_t ino : inodes) {
    auto now = t.Read(ino, 0);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == before[ino] || *now == Zeros()) << Diff(*now, Zeros());
  }
  failed.clear();
  ASSERT_OK(t.store().RemoveMany(inodes, &failed));
  EXPECT_TRUE(failed.empty());
  ASSERT_OK(t.CrashAndReopen());
  for (uint64_t ino : inodes) {
    auto now = t.Read(ino, 0);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == Zeros()) << "removed inode " << ino << " came back after a crash";
  }
}

// A target whose directories were created but not made durable (the SyncDir
// at start-up failed) is opened again in the same boot: the store must still
// make them durable before it acknowledges writes into them.
TEST(OpenFaultTest, StartUpAfterAFailedDirectorySyncStillMakesTheLayoutDurable) {
  for (uint64_t fail_at = 0;; ++fail_at) {
    SCOPED_TRACE("start-up's SyncDir number " + std::to_string(fail_at) + " fails");
    Target t(TestDir("_" + std::to_string(fail_at)));
    t.env().InjectFault(Fault::kSyncDirIoError, fail_at, 1);
    Status st = t.Open();
    if (t.env().fired(Fault::kSyncDirIoError) == 0) {
      ASSERT_OK(st);
      break;  // start-up has fewer SyncDirs than fail_at: all were tried
    }
    EXPECT_EQ(st.code(), proto::IO_ERROR);
    t.env().ClearFaults();
    ASSERT_OK(t.Open());  // the same boot: no crash in between
    const std::string data(kChunk, 'd');
    ASSERT_TRUE(t.Write(5, 0, 0, data).ok());
    ASSERT_OK(t.CrashAndReopen());
    auto now = t.Read(5, 0);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == data) << "an acknowledged write was lost: " << Diff(*now, data);
    ASSERT_LT(fail_at, 20u);
  }
}

// ---------------------------------------------------------------------------
// Power cut at every point of one operation: "die after K" for every K.

// Runs `op` on a target prepared by `setup`, with the machine dying after K
// mutating calls, for every K until op completes; after each cut the store
// restarts and every chunk of `chunks` must read as its state before the op,
// or after it — and after it whenever the op was acknowledged.
void CutPowerAtEveryPoint(const std::string& what, const std::function<void(Target&)>& setup,
                          const std::function<Status(Target&)>& op,
                          const std::vector<std::pair<uint64_t, uint64_t>>& chunks,
                          const std::vector<ChunkBytes>& before, const std::vector<ChunkBytes>& after) {
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE(what + ", power cut after " + std::to_string(k) + " mutating calls");
    Target t(TestDir("_" + std::to_string(k)));
    ASSERT_OK(t.Open());
    setup(t);
    t.env().ResetCounters();
    t.env().DieAfter(k);
    Status st = op(t);
    const bool completed = !t.env().dead();
    EXPECT_EQ(st.ok(), completed) << st.ToString();
    // The op that completed made exactly k mutating calls: the cuts before it
    // fell after each of its calls 0..k-1.
    if (completed) {
      EXPECT_EQ(t.env().mutating_calls(), k);
    }
    ASSERT_OK(t.CrashAndReopen());
    EXPECT_TRUE(t.PendingFiles().empty()) << "pending versions survived the restart";
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto now = t.Read(chunks[i].first, chunks[i].second);
      ASSERT_TRUE(now.ok()) << now.status().ToString();
      if (st.ok())
        EXPECT_TRUE(*now == after[i]) << "chunk " << i << " lost an acknowledged change: " << Diff(*now, after[i]);
      else
        EXPECT_TRUE(*now == before[i] || *now == after[i])
            << "chunk " << i << " is neither before nor after: " << Diff(*now, before[i]) << " / "
            << Diff(*now, after[i]);
    }
    if (completed) return;
    ASSERT_LT(k, 200u);
  }
}

TEST(PowerCutTest, FirstWriteOfAnInode) {
  std::mt19937_64 rng(1);
  const std::string b = RandomBytes(rng, 12345);
  CutPowerAtEveryPoint(
      "first write", [](Target&) {}, [&](Target& t) { return t.Write(3, 1, 777, b).status(); }, {{3, 1}}, {Zeros()},
      {Overlay(Zeros(), 777, b)});
}

TEST(PowerCutTest, RewriteOfACommittedChunk) {
  std::mt19937_64 rng(2);
  const std::string a = RandomBytes(rng, kChunk), b = RandomBytes(rng, 9000);
  CutPowerAtEveryPoint(
      "rewrite", [&](Target& t) { ASSERT_TRUE(t.Write(3, 1, 0, a).ok()); },
      [&](Target& t) { return t.Write(3, 1, 4000, b).status(); }, {{3, 1}}, {a}, {Overlay(a, 4000, b)});
}

TEST(PowerCutTest, TruncateAcrossChunks) {
  std::mt19937_64 rng(3);
  std::vector<ChunkBytes> before, after;
  std::vector<std::pair<uint64_t, uint64_t>> chunks;
  const uint64_t length = kChunk + 3000;
  for (uint64_t idx = 0; idx < 3; ++idx) {
    before.push_back(RandomBytes(rng, kChunk));
    chunks.push_back({4, idx});
    uint64_t start = idx * kChunk;
    after.push_back(length <= start ? Zeros() : CutTo(before.back(), length - start));
  }
  CutPowerAtEveryPoint(
      "truncate",
      [&](Target& t) {
        for (uint64_t idx = 0; idx < 3; ++idx) ASSERT_TRUE(t.Write(4, idx, 0, before[idx]).ok());
      },
      [&](Target& t) { return t.store().Truncate(4, length, kChunk); }, chunks, before, after);
}

TEST(PowerCutTest, RemoveOfAnInode) {
  std::mt19937_64 rng(4);
  std::vector<ChunkBytes> before;
  for (int i = 0; i < 2; ++i) before.push_back(RandomBytes(rng, kChunk));
  CutPowerAtEveryPoint(
      "remove",
      [&](Target& t) {
        for (uint64_t idx = 0; idx < 2; ++idx) ASSERT_TRUE(t.Write(6, idx, 0, before[idx]).ok());
      },
      [&](Target& t) { return t.store().Remove(6); }, {{6, 0}, {6, 1}}, before, {Zeros(), Zeros()});
}

TEST(PowerCutTest, RemoveOfManyInodes) {
  std::mt19937_64 rng(5);
  std::vector<ChunkBytes> before;
  for (int i = 0; i < 3; ++i) before.push_back(RandomBytes(rng, kChunk));
  CutPowerAtEveryPoint(
      "remove many",
      [&](Target& t) {
        ASSERT_TRUE(t.Write(6, 0, 0, before[0]).ok());
        ASSERT_TRUE(t.Write(6, 1, 0, before[1]).ok());
        ASSERT_TRUE(t.Write(262, 0, 0, before[2]).ok());  // the shard of 6
      },
      [&](Target& t) {
        std::vector<uint64_t> failed;
        return t.store().RemoveMany({6, 262, 7}, &failed);
      },
      {{6, 0}, {6, 1}, {262, 0}}, before,
      {Zeros(), Zeros(), Zeros()});
}

// The first start-up of a target, cut at points all through it (every one
// outside the run of 256 shard mkdirs, every 32nd within): the next start-up
// succeeds and the store works.
TEST(PowerCutTest, FirstStartUpOfATarget) {
  uint64_t calls;
  {
    Target probe(TestDir("_probe"));
    ASSERT_OK(probe.Open());
    calls = probe.env().mutating_calls();
  }
  ASSERT_GT(calls, 256u);
  std::vector<uint64_t> cuts;
  for (uint64_t k = 0; k <= calls; ++k)
    if (k < 8 || k + 16 > calls || k % 32 == 0) cuts.push_back(k);
  for (uint64_t k : cuts) {
    SCOPED_TRACE("power cut after " + std::to_string(k) + " of " + std::to_string(calls) + " mutating calls");
    Target t(TestDir("_" + std::to_string(k)));
    t.env().DieAfter(k);
    Status st = t.Open();
    EXPECT_EQ(st.ok(), k == calls) << st.ToString();
    ASSERT_OK(t.CrashAndReopen());
    const std::string data(kChunk, 's');
    ASSERT_TRUE(t.Write(1, 0, 0, data).ok());
    ASSERT_OK(t.CrashAndReopen());
    auto now = t.Read(1, 0);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    EXPECT_TRUE(*now == data);
  }
}

// A pending version a crash left behind (a file system that made the pending
// directory durable) is removed at start-up, and the committed chunk is intact.
TEST(PowerCutTest, PendingVersionsLeftByACrashAreRemovedAtStartUp) {
  Target t(TestDir());
  ASSERT_OK(t.Open());
  const std::string a(kChunk, 'a');
  ASSERT_TRUE(t.Write(8, 0, 0, a).ok());
  const std::string pending = t.root() + "/pending/8.0";
  {
    auto f = t.env().Open(pending, OpenMode::kCreateTrunc, /*direct=*/false);
    ASSERT_TRUE(f.ok());
    std::string junk(8192, 'j');
    ASSERT_OK((*f)->PWrite(junk.data(), junk.size(), 0));
    ASSERT_OK((*f)->Sync());
  }
  ASSERT_OK(t.env().SyncDir(t.root() + "/pending"));
  ASSERT_OK(t.CrashAndReopen());
  EXPECT_TRUE(t.PendingFiles().empty());
  auto now = t.Read(8, 0);
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(*now == a);
}

// ---------------------------------------------------------------------------
// Random operations, random faults, random power cuts, against a model.

// What the model knows of one chunk: what a reader sees now, and what a power
// cut may leave (the last acknowledged state, plus the state of every
// operation since that failed and so may or may not have landed).
struct ChunkModel {
  ChunkBytes visible = Zeros();
  std::vector<ChunkBytes> after_crash{Zeros()};
};

// SHOAL_FAULT_SEEDS=<n> runs n seeds instead of 6 (a longer hunt).
TEST(PowerCutTest, RandomOperationsFaultsAndCutsMatchTheModel) {
  const uint64_t kInodes[] = {1, 2, 0x101};  // 1 and 0x101 share a shard directory
  constexpr uint64_t kIndexes = 3;
  const char* seeds_env = getenv("SHOAL_FAULT_SEEDS");
  const uint64_t seeds = seeds_env ? strtoull(seeds_env, nullptr, 10) : 6;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Target t(TestDir("_" + std::to_string(seed)));
    ASSERT_OK(t.Open());
    std::map<std::pair<uint64_t, uint64_t>, ChunkModel> model;
    for (uint64_t ino : kInodes)
      for (uint64_t idx = 0; idx < kIndexes; ++idx) model[{ino, idx}];
    int crashes = 0, failures = 0;
    std::vector<std::string> history;  // since the last power cut, shown on a failure
    auto shown = [&] {
      std::string out;
      for (auto& h : history) out += "\n  " + h;
      return out;
    };

    auto check_after_crash = [&](int step) {
      ASSERT_OK(t.CrashAndReopen());
      ++crashes;
      EXPECT_TRUE(t.PendingFiles().empty());
      for (auto& [key, m] : model) {
        auto now = t.Read(key.first, key.second);
        ASSERT_TRUE(now.ok()) << now.status().ToString();
        bool allowed = std::find(m.after_crash.begin(), m.after_crash.end(), *now) != m.after_crash.end();
        ASSERT_TRUE(allowed) << "step " << step << ", inode " << key.first << " chunk " << key.second
                             << ": after the crash the chunk holds bytes of no acknowledged or attempted state ("
                             << Diff(*now, m.after_crash.front()) << " from the acknowledged one, "
                             << m.after_crash.size() << " states allowed); since the last cut:" << shown();
        m.visible = *now;
        m.after_crash = {*now};
      }
      history.clear();
    };

    for (int step = 0; step < 120; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      if (rng() % 8 == 0) {
        auto fault = static_cast<Fault>(rng() % static_cast<int>(Fault::kCount));
        uint64_t after = rng() % 5;
        t.env().InjectFault(fault, after, 1);
        history.push_back("fault " + std::to_string(static_cast<int>(fault)) + " after " + std::to_string(after));
      }
      if (rng() % 12 == 0) {
        uint64_t k = rng() % 8;
        t.env().DieAfter(k);
        history.push_back("die after " + std::to_string(k));
      }

      // One operation and the chunk states it leads to.
      const uint64_t ino = kInodes[rng() % 3];
      std::map<std::pair<uint64_t, uint64_t>, ChunkBytes> next;
      Status st;
      const int kind = static_cast<int>(rng() % 10);
      if (kind < 7) {
        uint64_t idx = rng() % kIndexes;
        uint32_t off = static_cast<uint32_t>(rng() % kChunk);
        uint32_t len = 1 + static_cast<uint32_t>(rng() % std::min<uint32_t>(kChunk - off, 24000));
        std::string data = RandomBytes(rng, len);
        next[{ino, idx}] = Overlay(model[{ino, idx}].visible, off, data);
        st = t.Write(ino, idx, off, data).status();
        history.push_back("step " + std::to_string(step) + ": write inode " + std::to_string(ino) + " chunk " +
                          std::to_string(idx) + " [" + std::to_string(off) + ", +" + std::to_string(len) + ")");
      } else if (kind < 9) {
        uint64_t length = rng() % (kIndexes * kChunk + 1);
        for (uint64_t idx = 0; idx < kIndexes; ++idx) {
          uint64_t start = idx * kChunk;
          next[{ino, idx}] = length <= start ? Zeros() : CutTo(model[{ino, idx}].visible, length - start);
        }
        st = t.store().Truncate(ino, length, kChunk);
        history.push_back("step " + std::to_string(step) + ": truncate inode " + std::to_string(ino) + " to " +
                          std::to_string(length));
      } else {
        for (uint64_t idx = 0; idx < kIndexes; ++idx) next[{ino, idx}] = Zeros();
        st = t.store().Remove(ino);
        history.push_back("step " + std::to_string(step) + ": remove inode " + std::to_string(ino));
      }
      history.back() += " -> " + st.ToString() + (t.env().dead() ? " (dead)" : "");

      for (auto& [key, state] : next) {
        ChunkModel& m = model[key];
        if (st.ok()) {
          m.visible = state;
          m.after_crash = {state};
          continue;
        }
        m.after_crash.push_back(state);
        if (t.env().dead()) continue;
        // A failed operation: each chunk reads as before or after it, nothing else.
        auto now = t.Read(key.first, key.second);
        ASSERT_TRUE(now.ok()) << now.status().ToString();
        ASSERT_TRUE(*now == m.visible || *now == state)
            << "after a failed operation (" << st.ToString() << ") inode " << key.first << " chunk " << key.second
            << " reads as neither its old nor its new bytes: " << Diff(*now, state);
        m.visible = *now;
      }
      if (!st.ok()) {
        ++failures;
        EXPECT_TRUE(st.code() == proto::IO_ERROR || st.code() == proto::NO_SPACE) << st.ToString();
      }
      if (t.env().dead() || rng() % 10 == 0) {
        ASSERT_NO_FATAL_FAILURE(check_after_crash(step));
      }
    }
    ASSERT_NO_FATAL_FAILURE(check_after_crash(120));
    EXPECT_GT(crashes, 5);
    EXPECT_GT(failures, 5);
  }
}

// Writers of different chunks of one inode, and a writer that keeps removing
// and recreating an inode of the same shard directory, side by side while
// faults fire and the machine finally dies: each chunk is then in a state its
// own writer acknowledged or attempted. (Directory syncs are shared between
// the writers: one's failed sync must not let another be acknowledged early.)
TEST(PowerCutTest, ConcurrentWritersWithFaultsAndACut) {
  for (uint64_t round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Target t(TestDir("_" + std::to_string(round)));
    ASSERT_OK(t.Open());
    constexpr int kWriters = 4;
    // Writer w owns chunk (1, w), except the last, which owns (0x101, 0) and removes its inode.
    auto key_of = [](int w) { return w < kWriters - 1 ? std::make_pair(uint64_t{1}, uint64_t(w)) : std::make_pair(uint64_t{0x101}, uint64_t{0}); };
    std::vector<ChunkModel> models(kWriters);
    std::vector<std::string> errors(kWriters);
    std::atomic<bool> stop{false};
    std::atomic<int> writing{kWriters};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        std::mt19937_64 rng(round * 100 + w);
        auto [ino, idx] = key_of(w);
        ChunkModel& m = models[w];
        while (!stop && !t.env().dead()) {
          ChunkBytes next;
          Status st;
          if (w == kWriters - 1 && rng() % 3 == 0) {
            next = Zeros();
            st = t.store().Remove(ino);
          } else {
            uint32_t off = static_cast<uint32_t>(rng() % kChunk);
            std::string data = RandomBytes(rng, 1 + rng() % std::min<uint32_t>(kChunk - off, 16000));
            next = Overlay(m.visible, off, data);
            st = t.Write(ino, idx, off, data).status();
          }
          if (st.ok()) {
            m.visible = next;
            m.after_crash = {next};
            continue;
          }
          m.after_crash.push_back(next);
          if (t.env().dead()) break;
          auto now = t.Read(ino, idx);
          // Another writer's call may have been the machine's last since the check above.
          if (!now.ok() && t.env().dead()) break;
          if (!now.ok()) {
            errors[w] = "after a failed operation (" + st.ToString() + ") the read failed: " + now.status().ToString();
            break;
          }
          if (!(*now == m.visible || *now == next)) {
            errors[w] = "after a failed operation (" + st.ToString() + ") the chunk reads as neither before nor after (" +
                        Diff(*now, m.visible) + " from before, " + Diff(*now, next) + " from after)";
            break;
          }
          m.visible = *now;
        }
        --writing;
      });
    }
    std::mt19937_64 rng(round);
    for (int i = 0; i < 30 && !t.env().dead(); ++i) {
      t.env().InjectFault(static_cast<Fault>(rng() % static_cast<int>(Fault::kCount)), rng() % 6, 1);
      // The next fault once the writers have moved on (or have all stopped).
      uint64_t before = t.env().mutating_calls();
      ASSERT_TRUE(testutil::Eventually(
          [&] { return t.env().mutating_calls() > before + 2 || t.env().dead() || writing == 0; }));
    }
    t.env().DieAfter(rng() % 20);
    ASSERT_TRUE(testutil::Eventually([&] { return t.env().dead(); }));
    stop = true;
    for (auto& th : writers) th.join();
    for (int w = 0; w < kWriters; ++w) EXPECT_EQ(errors[w], "") << "writer " << w;
    ASSERT_OK(t.CrashAndReopen());
    EXPECT_TRUE(t.PendingFiles().empty());
    for (int w = 0; w < kWriters; ++w) {
      auto [ino, idx] = key_of(w);
      auto now = t.Read(ino, idx);
      ASSERT_TRUE(now.ok()) << now.status().ToString();
      const auto& allowed = models[w].after_crash;
      EXPECT_TRUE(std::find(allowed.begin(), allowed.end(), *now) != allowed.end())
          << "writer " << w << ": after the crash its chunk holds no acknowledged or attempted state ("
          << Diff(*now, allowed.front()) << " from the acknowledged one)";
    }
  }
}

}  // namespace
}  // namespace shoal::storage
