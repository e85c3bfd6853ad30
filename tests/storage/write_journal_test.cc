// The write journal (write_journal.h) and the journaled writes of the O_DIRECT
// store (journaled_writes.h): records come back in order after a restart and
// no record behind a checkpoint does; the ring wraps and refuses when full;
// a torn record ends the replay; one damaged superblock loses nothing;
// concurrent writers share syncs; a failed sync breaks the journal, not the
// store. Through the store: a new small chunk costs no chunk file until it
// is applied, survives a power cut before that, and a truncate or remove
// after it is never undone by a replay.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "storage/chunk_store.h"
#include "storage/fault_file_env.h"
#include "storage/write_journal.h"

namespace shoal::storage {
namespace {

namespace fs = std::filesystem;

std::string Dir() {
  std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string d = ::testing::TempDir() + "/wj_" + std::to_string(getpid()) + "_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

struct Seen {
  uint64_t seq, inode, version;
  std::string data;
};

std::vector<Seen> ReplayAll(WriteJournal* j) {
  std::vector<Seen> seen;
  Status st = j->Replay([&](const JournalRecord& r) {
    seen.push_back({r.seq, r.inode, r.version, std::string(reinterpret_cast<const char*>(r.data), r.length)});
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  st = j->Checkpoint(/*force=*/true);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return seen;
}

std::unique_ptr<WriteJournal> OpenJournal(FileEnv* env, const std::string& path, uint64_t size) {
  WriteJournal::Options o;
  o.size_bytes = size;
  auto j = WriteJournal::Open(env, path, o);
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  return j.ok() ? std::move(*j) : nullptr;
}

uint64_t Append(WriteJournal* j, uint64_t inode, const std::string& data, uint64_t version = 1) {
  JournalRecord r;
  r.inode = inode;
  r.chunk_size = 1 << 20;
  r.length = static_cast<uint32_t>(data.size());
  r.version = version;
  r.data = reinterpret_cast<const uint8_t*>(data.data());
  auto seq = j->Append(r);
  EXPECT_TRUE(seq.ok()) << seq.status().ToString();
  return seq.ok() && *seq ? **seq : 0;
}

TEST(WriteJournalTest, RecordsComeBackInOrderAndNoneBehindTheCheckpoint) {
  const std::string d = Dir();
  {
    auto j = OpenJournal(RealFileEnv(), d + "/journal", 1 << 20);
    EXPECT_TRUE(ReplayAll(j.get()).empty());
    uint64_t s1 = Append(j.get(), 1, "one");
    Append(j.get(), 2, std::string(5000, 'b'));
    Append(j.get(), 3, "");
    j->Retire(s1);
    ASSERT_TRUE(j->Checkpoint().ok());
    EXPECT_EQ(j->checkpointed(), s1);
    EXPECT_FALSE(j->HasLiveRecords(1));
    EXPECT_TRUE(j->HasLiveRecords(2));
  }
  auto j = OpenJournal(RealFileEnv(), d + "/journal", 1 << 20);
  auto seen = ReplayAll(j.get());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].inode, 2u);
  EXPECT_EQ(seen[0].data, std::string(5000, 'b'));
  EXPECT_EQ(seen[1].inode, 3u);
  EXPECT_EQ(seen[1].seq, seen[0].seq + 1);
  // After a replay everything counts as applied: a second start finds nothing.
  j.reset();
  j = OpenJournal(RealFileEnv(), d + "/journal", 1 << 20);
  EXPECT_TRUE(ReplayAll(j.get()).empty());
  fs::remove_all(d);
}

TEST(WriteJournalTest, TheRingWrapsAndRefusesWhenFullLosingNothing) {
  const std::string d = Dir();
  const uint64_t size = WriteJournal::kRingStart + 10 * 8192;  // ten 4 KiB records
  auto j = OpenJournal(RealFileEnv(), d + "/journal", size);
  ReplayAll(j.get());
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 10; ++i) seqs.push_back(Append(j.get(), 100 + i, std::string(4096, 'a' + i)));
  JournalRecord r;
  std::string more(4096, 'z');
  r.inode = 999;
  r.length = 4096;
  r.data = reinterpret_cast<const uint8_t*>(more.data());
  auto refused = j->Append(r);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(*refused) << "a full ring must refuse, not overwrite";
  // Retired but not checkpointed: still refused (a replay still reads them).
  for (int i = 0; i < 4; ++i) j->Retire(seqs[i]);
  EXPECT_FALSE(*j->Append(r));
  ASSERT_TRUE(j->Checkpoint().ok());
  // Now four slots are free, at the start of the ring: the next records wrap.
  for (int i = 0; i < 4; ++i) EXPECT_NE(Append(j.get(), 200 + i, std::string(4096, 'A' + i)), 0u);
  EXPECT_FALSE(*j->Append(r));
  j.reset();
  j = OpenJournal(RealFileEnv(), d + "/journal", size);
  auto seen = ReplayAll(j.get());
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(seen[i].data, std::string(4096, 'a' + 4 + i));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(seen[6 + i].data, std::string(4096, 'A' + i)) << "after the wrap";
  ASSERT_TRUE(j->Checkpoint(/*force=*/true).ok());
  // Filled to the very end of the ring and checkpointed there: it opens.
  for (int i = 0; i < 6; ++i) {
    uint64_t s = Append(j.get(), 300 + i, std::string(4096, 'e'));
    ASSERT_NE(s, 0u);
    j->Retire(s);
  }
  ASSERT_TRUE(j->Checkpoint().ok());
  j.reset();
  j = OpenJournal(RealFileEnv(), d + "/journal", size);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(ReplayAll(j.get()).empty());
  ASSERT_TRUE(j->Checkpoint(/*force=*/true).ok());
  EXPECT_NE(Append(j.get(), 400, "after"), 0u);
  fs::remove_all(d);
}

TEST(WriteJournalTest, ATornRecordEndsTheReplayAndOneDamagedSuperblockLosesNothing) {
  const std::string d = Dir();
  const std::string path = d + "/journal";
  {
    auto j = OpenJournal(RealFileEnv(), path, 1 << 20);
    ReplayAll(j.get());
    uint64_t s = Append(j.get(), 1, "gone");
    j->Retire(s);
    ASSERT_TRUE(j->Checkpoint().ok());  // a superblock in one slot
    j->Retire(Append(j.get(), 2, "gone too"));
    ASSERT_TRUE(j->Checkpoint().ok());  // and the newer in the other
    Append(j.get(), 3, "kept");
    Append(j.get(), 4, std::string(9000, 't'));
  }
  // The newest superblock is damaged: the older one names an earlier
  // checkpoint, from which the same live records (and one more) are found.
  // The last record is torn in its data.
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char junk[64];
  std::memset(junk, 0x5a, sizeof(junk));
  uint64_t gens[2];
  ASSERT_EQ(pread(fd, &gens[0], 8, 8), 8);
  ASSERT_EQ(pread(fd, &gens[1], 8, 4096 + 8), 8);
  ASSERT_EQ(pwrite(fd, junk, sizeof(junk), (gens[1] > gens[0] ? 4096 : 0) + 20), 64);
  const off_t last_data = WriteJournal::kRingStart + 3 * 8192 + 4096 + 4096;
  ASSERT_EQ(pwrite(fd, junk, sizeof(junk), last_data), 64);
  ::close(fd);
  auto j = OpenJournal(RealFileEnv(), path, 1 << 20);
  auto seen = ReplayAll(j.get());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].inode, 2u);
  EXPECT_EQ(seen[1].inode, 3u);
  EXPECT_EQ(seen[1].data, "kept");
  fs::remove_all(d);
}

TEST(WriteJournalTest, ConcurrentWritersShareSyncs) {
  const std::string d = Dir();
  std::atomic<uint64_t> commits{0};
  WriteJournal::Options o;
  o.size_bytes = 16 << 20;
  o.commits = &commits;
  auto j = std::move(WriteJournal::Open(RealFileEnv(), d + "/journal", o)).value();
  ReplayAll(j.get());
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) Append(j.get(), t * 1000 + i, std::string(4096, 'x'));
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(j->stats().records, uint64_t{kThreads * kEach});
  EXPECT_LT(commits.load(), uint64_t{kThreads * kEach}) << "every record paid its own sync";
  j.reset();
  j = std::move(WriteJournal::Open(RealFileEnv(), d + "/journal", o)).value();
  EXPECT_EQ(ReplayAll(j.get()).size(), size_t{kThreads * kEach});
  fs::remove_all(d);
}

TEST(WriteJournalTest, AFailedSyncBreaksTheJournalAndTheCheckpointPassesIt) {
  const std::string d = Dir();
  FaultFileEnv env(RealFileEnv(), d);
  auto j = OpenJournal(&env, d + "/journal", 1 << 20);
  ReplayAll(j.get());
  Append(j.get(), 1, "ok");
  env.InjectFault(FaultFileEnv::Fault::kSyncIoError, 0, 1);
  JournalRecord r;
  std::string bytes = "lost";
  r.inode = 2;
  r.length = 4;
  r.data = reinterpret_cast<const uint8_t*>(bytes.data());
  auto failed = j->Append(r);
  EXPECT_EQ(failed.status().code(), proto::IO_ERROR);
  EXPECT_TRUE(j->HasLiveRecords(2)) << "a failed record may still be found by a replay";
  auto refused = j->Append(r);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(*refused) << "nothing may follow a record that may be torn";
  ASSERT_TRUE(j->Checkpoint().ok());
  EXPECT_TRUE(j->HasLiveRecords(2)) << "record 1 was never retired: the checkpoint stays before both";
  j->Retire(1);
  ASSERT_TRUE(j->Checkpoint().ok());
  EXPECT_FALSE(j->HasLiveRecords(2)) << "the failed record is passed once the one before it is retired";
  fs::remove_all(d);
}

// ---------------------------------------------------------------------------
// Through the store.

constexpr uint32_t kChunk = 1 << 20;

class JournaledStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Dir();
    env_ = std::make_unique<FaultFileEnv>(RealFileEnv(), dir_);
    Open();
  }
  void TearDown() override {
    store_.reset();
    env_.reset();
    fs::remove_all(dir_);
  }
  void Open(int64_t apply_delay_ms = 3600 * 1000, uint64_t journal_bytes = 1 << 20) {
    UringOptions o;
    o.env = env_.get();
    o.journal_bytes = journal_bytes;
    o.journal_max_chunk_bytes = 64 << 10;
    o.journal_apply_delay_ms = apply_delay_ms;  // by default never on its own: the tests choose
    auto s = OpenUringChunkStore(dir_, o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void CrashAndReopen() {
    store_.reset();
    ASSERT_TRUE(env_->Crash().ok());
    Open();
  }
  Result<uint64_t> Write(uint64_t ino, uint64_t idx, uint32_t off, const std::string& data) {
    ChunkWrite w{ino, idx, off, reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(data.size()),
                 kChunk, 0};
    return store_->Write(w);
  }
  std::string Read(uint64_t ino, uint64_t idx, uint32_t len) {
    ReadOp op;
    op.inode = ino;
    op.index = idx;
    op.length = len;
    op.chunk_size = kChunk;
    std::promise<void> p;
    store_->Read({&op}, [&] { p.set_value(); });
    EXPECT_EQ(p.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_TRUE(op.status.ok()) << op.status.ToString();
    return op.status.ok() ? std::string(reinterpret_cast<const char*>(op.data), len) : "";
  }
  bool FileExists(uint64_t ino, uint64_t idx) { return fs::exists(ChunkFilePath(dir_, ino, idx)); }

  std::string dir_;
  std::unique_ptr<FaultFileEnv> env_;
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(JournaledStoreTest, ANewSmallChunkIsOneJournalSyncAndSurvivesAPowerCutBeforeItIsApplied) {
  const uint64_t calls_before = env_->mutating_calls();
  auto v = Write(7, 0, 0, std::string(4096, 'a'));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 1u);
  EXPECT_EQ(env_->mutating_calls() - calls_before, 2u) << "one write and one sync of the journal, nothing else";
  EXPECT_FALSE(FileExists(7, 0));
  EXPECT_EQ(store_->stats().journaled_writes.load(), 1u);
  ASSERT_TRUE(Write(7, 0, 4096, std::string(100, 'b')).ok());  // joins the journaled chunk
  std::string want = std::string(4096, 'a') + std::string(100, 'b') + std::string(4096 - 100, '\0');
  EXPECT_EQ(Read(7, 0, 8192), want);

  CrashAndReopen();  // nothing was applied: both records are replayed
  EXPECT_TRUE(FileExists(7, 0));
  EXPECT_EQ(Read(7, 0, 8192), want);
  EXPECT_EQ(*Write(7, 0, 0, "c"), 3u) << "versions carry on from the replayed ones";
}

TEST_F(JournaledStoreTest, ATruncateOrRemoveAfterAJournaledWriteIsNeverUndoneByAReplay) {
  ASSERT_TRUE(Write(8, 0, 0, std::string(6000, 'x')).ok());
  ASSERT_TRUE(Write(9, 0, 0, std::string(6000, 'y')).ok());
  ASSERT_TRUE(store_->Truncate(8, 100, kChunk).ok());
  ASSERT_TRUE(store_->Remove(9).ok());
  CrashAndReopen();
  EXPECT_EQ(Read(8, 0, 6000), std::string(100, 'x') + std::string(5900, '\0'));
  EXPECT_EQ(Read(9, 0, 6000), std::string(6000, '\0'));
}

TEST_F(JournaledStoreTest, AChunkThatOutgrowsTheJournalGoesToItsFileWithItsEarlierBytes) {
  ASSERT_TRUE(Write(10, 0, 0, std::string(1000, 'p')).ok());
  EXPECT_FALSE(FileExists(10, 0));
  ASSERT_TRUE(Write(10, 0, 60000, std::string(10000, 'q')).ok());  // 70,000 bytes > 64 KiB
  EXPECT_TRUE(FileExists(10, 0));
  std::string want = std::string(1000, 'p') + std::string(59000, '\0') + std::string(10000, 'q');
  EXPECT_EQ(Read(10, 0, 70000), want);
  CrashAndReopen();
  EXPECT_EQ(Read(10, 0, 70000), want);
}

TEST_F(JournaledStoreTest, AFullJournalSendsWritesToTheirFiles) {
  // 1 MiB of journal holds 127 records of 4 KiB; none is applied here.
  for (uint64_t ino = 100; ino < 300; ++ino) ASSERT_TRUE(Write(ino, 0, 0, std::string(4096, 'a' + ino % 26)).ok());
  EXPECT_LT(store_->stats().journaled_writes.load(), 200u);
  EXPECT_GT(store_->stats().journaled_writes.load(), 100u);
  CrashAndReopen();
  for (uint64_t ino = 100; ino < 300; ++ino) EXPECT_EQ(Read(ino, 0, 4096), std::string(4096, 'a' + ino % 26)) << ino;
}

TEST_F(JournaledStoreTest, AJournaledWriteAfterAFailedRemoveIsNotUndoneByAPowerCut) {
  ASSERT_TRUE(Write(13, 0, 0, std::string(5000, 'o')).ok());
  ASSERT_TRUE(ApplyJournaledWrites(store_.get()).ok());  // the old chunk is a file
  env_->InjectFault(FaultFileEnv::Fault::kSyncDirIoError, 0, 1);
  EXPECT_FALSE(store_->Remove(13).ok());  // its file is gone, not durably
  ASSERT_TRUE(Write(13, 0, 0, std::string(100, 'n')).ok());
  CrashAndReopen();
  EXPECT_EQ(Read(13, 0, 5000), std::string(100, 'n') + std::string(4900, '\0'))
      << "the acknowledged write lost to the old chunk";
}

TEST_F(JournaledStoreTest, ATargetReopenedWithoutAJournalReplaysWhatItHeldFirst) {
  ASSERT_TRUE(Write(12, 0, 0, std::string(3000, 'j')).ok());
  store_.reset();  // as a process that stops: nothing applied
  Open(3600 * 1000, /*journal_bytes=*/0);
  EXPECT_FALSE(fs::exists(dir_ + "/journal"));
  EXPECT_EQ(Read(12, 0, 3000), std::string(3000, 'j'));
  ASSERT_TRUE(Write(12, 1, 0, "to the file").ok());
  EXPECT_TRUE(FileExists(12, 1));
}

TEST_F(JournaledStoreTest, TheApplierWritesChunkFilesAndFreesTheJournal) {
  store_.reset();
  Open(/*apply_delay_ms=*/0);
  ASSERT_TRUE(Write(11, 0, 0, std::string(4096, 'k')).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!FileExists(11, 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(FileExists(11, 0)) << "not applied within 30 s";
  EXPECT_EQ(Read(11, 0, 4096), std::string(4096, 'k'));
  // Hundreds of journal-fulls later, every write still went to the journal.
  for (uint64_t ino = 1000; ino < 1400; ++ino) ASSERT_TRUE(Write(ino, 0, 0, std::string(4096, 'm')).ok());
  EXPECT_GT(store_->stats().journaled_writes.load(), 127u);
  CrashAndReopen();
  for (uint64_t ino = 1000; ino < 1400; ino += 37) EXPECT_EQ(Read(ino, 0, 4096), std::string(4096, 'm'));
}

}  // namespace
}  // namespace shoal::storage
