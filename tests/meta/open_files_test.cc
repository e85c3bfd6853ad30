// Open files, client sessions and retried calls in MetaStore, over both Kv
// backends, with leases on a manual clock. A "restart" is a new MetaStore on
// the same Kv (what shoal-meta does after a crash).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "common/clock.h"
#include "meta/meta_store.h"

namespace shoal::meta {
namespace {

struct MemoryBackend {
  static std::unique_ptr<Kv> Open(const std::string&) { return NewMemoryKv(); }
};
struct RocksBackend {
  static std::unique_ptr<Kv> Open(const std::string& dir) { return std::move(OpenRocksKv(dir)).value(); }
};

// Passes everything to `inner`, counting the syncs asked for.
class SyncCountingKv : public Kv {
 public:
  explicit SyncCountingKv(Kv* inner) : inner_(inner) {}
  Result<std::string> Get(Cf cf, std::string_view key) override { return inner_->Get(cf, key); }
  Result<uint64_t> Apply(const KvBatch& batch) override { return inner_->Apply(batch); }
  Status SyncThrough(uint64_t seq) override {
    ++syncs;
    return inner_->SyncThrough(seq);
  }
  uint64_t LastApplied() const override { return inner_->LastApplied(); }
  Status Scan(Cf cf, std::string_view prefix, std::string_view after, const ScanFn& fn) override {
    return inner_->Scan(cf, prefix, after, fn);
  }
  std::atomic<int> syncs{0};

 private:
  Kv* inner_;
};

constexpr uint64_t kClientA = 0xA1;
constexpr uint64_t kClientB = 0xB2;

proto::RequestId Rid(uint64_t client, uint64_t id, uint64_t oldest = 0) {
  proto::RequestId r;
  r.set_client_id(client);
  r.set_request_id(id);
  r.set_oldest_pending(oldest ? oldest : id);
  return r;
}

template <typename B>
class OpenFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/of_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    kv_ = B::Open(dir_);
    Restart();
  }
  void TearDown() override {
    store_.reset();
    kv_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A restart of meta on the same host boot, or (another `boot`) after the
  // host itself went down.
  void Restart(const std::string& boot = "boot-1") {
    store_.reset();
    counting_ = std::make_unique<SyncCountingKv>(kv_.get());
    store_ = std::make_unique<MetaStore>(counting_.get(), [] { return std::vector<uint32_t>{1, 2}; }, &clock_);
    store_->set_max_lease_ms(60000);
    store_->set_host_boot_id(boot);
    ASSERT_TRUE(store_->Init().ok());
  }
  // What a crash of the host can do to open records: they are written without a sync.
  void LoseOpenRecord(uint64_t client, uint64_t ino, uint64_t handle) {
    KvBatch b;
    b.Delete(Cf::kOpenFiles, "i" + MetaStore::InodeKey(ino) + MetaStore::InodeKey(client) + MetaStore::InodeKey(handle));
    b.Delete(Cf::kOpenFiles, "c" + MetaStore::InodeKey(client) + MetaStore::InodeKey(ino) + MetaStore::InodeKey(handle));
    ASSERT_TRUE(kv_->Write(b).ok());
  }
  uint64_t Create(const std::string& name) {
    auto a = store_->Create(Caller(), 1, name, 0644, true);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? a->ino() : 0;
  }
  void Session(uint64_t client, uint32_t lease_ms) {
    bool known = false;
    auto granted = store_->RenewSession(client, lease_ms, &known);
    ASSERT_TRUE(granted.ok()) << granted.status().ToString();
    ASSERT_EQ(*granted, lease_ms);
  }
  std::vector<uint64_t> Queued() {
    std::vector<uint64_t> out;
    auto q = store_->PendingReclaims(100);
    EXPECT_TRUE(q.ok());
    if (q.ok())
      for (auto& r : *q) out.push_back(r.ino);
    return out;
  }
  // Alive as an orphan: attributes by inode with no link, no name, not queued.
  void ExpectOrphan(uint64_t ino, const std::string& old_name) {
    auto a = store_->GetAttr(ino);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->nlink(), 0u);
    EXPECT_EQ(store_->Lookup(Caller(), 1, old_name).status().code(), proto::NOT_FOUND);
    EXPECT_TRUE(store_->Open(Caller(), ino, O_RDWR).ok());
    EXPECT_EQ(Queued(), std::vector<uint64_t>{});
  }
  void ExpectReclaimed(uint64_t ino) {
    EXPECT_EQ(store_->GetAttr(ino).status().code(), proto::NOT_FOUND);
    EXPECT_EQ(Queued(), std::vector<uint64_t>{ino});
    EXPECT_EQ(store_->CountOrphans(), 0u);
  }

  std::string dir_;
  ManualClock clock_;
  std::unique_ptr<Kv> kv_;
  std::unique_ptr<SyncCountingKv> counting_;
  std::unique_ptr<MetaStore> store_;
};

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;
TYPED_TEST_SUITE(OpenFilesTest, Backends);

TYPED_TEST(OpenFilesTest, AnUnlinkedOpenFileLivesUntilItsLastRelease) {
  this->Session(kClientA, 30000);
  this->Session(kClientB, 30000);
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());  // a retry: one record
  ASSERT_TRUE(this->store_->RecordOpen(kClientB, ino, 7).ok());
  EXPECT_EQ(this->store_->CountOpenRecords(), 2u);
  uint64_t inodes = this->store_->CountInodes();

  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  this->ExpectOrphan(ino, "f");
  EXPECT_EQ(this->store_->CountOrphans(), 1u);
  EXPECT_EQ(this->store_->CountInodes(), inodes);
  // Writable: a writer still reports its length.
  auto grown = this->store_->UpdateLength(ino, 4096);
  ASSERT_TRUE(grown.ok());
  EXPECT_EQ(grown->size(), 4096u);
  // No new name for it.
  EXPECT_EQ(this->store_->Link(Caller(), ino, 1, "again").status().code(), proto::NOT_FOUND);

  ASSERT_TRUE(this->store_->Release(kClientA, ino, 1).ok());
  this->ExpectOrphan(ino, "f");
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 1).ok());  // released twice: still held by B
  this->ExpectOrphan(ino, "f");
  ASSERT_TRUE(this->store_->Release(kClientB, ino, 7).ok());
  this->ExpectReclaimed(ino);
  EXPECT_EQ(this->store_->CountOpenRecords(), 0u);
  EXPECT_EQ(this->store_->CountInodes(), inodes - 1);
}

TYPED_TEST(OpenFilesTest, AClosedFileIsReclaimedAtUnlinkAndOpenByInodeOfItFails) {
  this->Session(kClientA, 30000);
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  this->ExpectReclaimed(ino);
  EXPECT_EQ(this->store_->RecordOpen(kClientA, ino, 2).code(), proto::NOT_FOUND);
}

TYPED_TEST(OpenFilesTest, RenameOverAnOpenFileKeepsTheVictim) {
  this->Session(kClientA, 30000);
  uint64_t victim = this->Create("victim");
  uint64_t src = this->Create("src");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, victim, 3).ok());
  ASSERT_TRUE(this->store_->Rename(Caller(), 1, "src", 1, "victim", false).ok());
  auto now_named = this->store_->Lookup(Caller(), 1, "victim");
  ASSERT_TRUE(now_named.ok());
  EXPECT_EQ(now_named->ino(), src);
  auto a = this->store_->GetAttr(victim);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink(), 0u);
  EXPECT_EQ(this->Queued(), std::vector<uint64_t>{});
  ASSERT_TRUE(this->store_->Release(kClientA, victim, 3).ok());
  this->ExpectReclaimed(victim);
}

TYPED_TEST(OpenFilesTest, ALinkKeptElsewhereIsNotAnOrphan) {
  this->Session(kClientA, 30000);
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->Link(Caller(), ino, 1, "g").ok());
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  EXPECT_EQ(this->store_->GetAttr(ino)->nlink(), 1u);
  EXPECT_EQ(this->store_->CountOrphans(), 0u);
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 1).ok());
  EXPECT_TRUE(this->store_->GetAttr(ino).ok());  // "g" still names it
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "g").ok());
  this->ExpectReclaimed(ino);
}

TYPED_TEST(OpenFilesTest, ADeadClientsOpensGoWhenItsLeasePasses) {
  this->Session(kClientA, 5000);
  this->Session(kClientB, 20000);
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  EXPECT_EQ(this->store_->CountSessions(), 2u);

  this->clock_.Advance(4999);
  EXPECT_EQ(*this->store_->ExpireSessions(), 0);
  this->ExpectOrphan(ino, "f");
  // B renews and lives on; A does not.
  this->Session(kClientB, 20000);
  this->clock_.Advance(1);
  EXPECT_EQ(*this->store_->ExpireSessions(), 1);
  this->ExpectReclaimed(ino);
  EXPECT_EQ(this->store_->CountSessions(), 1u);
  // A comes back: meta tells it that its session was gone.
  bool known = true;
  ASSERT_TRUE(this->store_->RenewSession(kClientA, 5000, &known).ok());
  EXPECT_FALSE(known);
}

TYPED_TEST(OpenFilesTest, RenewingKeepsTheOpensAlive) {
  this->Session(kClientA, 1000);
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  for (int i = 0; i < 10; ++i) {
    this->clock_.Advance(600);
    this->Session(kClientA, 1000);
    EXPECT_EQ(*this->store_->ExpireSessions(), 0);
  }
  this->ExpectOrphan(ino, "f");
  ASSERT_TRUE(this->store_->CloseSession(kClientA).ok());  // a clean unmount releases everything
  this->ExpectReclaimed(ino);
}

TYPED_TEST(OpenFilesTest, OrphansAndSessionsSurviveARestartAndExpireAfterIt) {
  this->Session(kClientA, 3000);
  this->Session(kClientB, 3000);
  uint64_t held = this->Create("held");
  uint64_t dead = this->Create("dead");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, held, 1).ok());
  ASSERT_TRUE(this->store_->RecordOpen(kClientB, dead, 1).ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "held").ok());
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "dead").ok());

  this->clock_.Advance(2900);
  this->Restart();
  EXPECT_EQ(this->store_->CountOrphans(), 2u);
  EXPECT_EQ(this->store_->CountOpenRecords(), 2u);
  EXPECT_EQ(this->store_->CountSessions(), 2u);
  // Each session got its whole lease again from the restart.
  this->clock_.Advance(2900);
  EXPECT_EQ(*this->store_->ExpireSessions(), 0);
  this->ExpectOrphan(held, "held");
  this->ExpectOrphan(dead, "dead");
  this->Session(kClientA, 3000);  // A is alive, B died with meta
  this->clock_.Advance(100);
  EXPECT_EQ(*this->store_->ExpireSessions(), 1);
  EXPECT_TRUE(this->store_->GetAttr(held).ok());
  EXPECT_EQ(this->store_->GetAttr(dead).status().code(), proto::NOT_FOUND);
  EXPECT_EQ(this->Queued(), std::vector<uint64_t>{dead});
  ASSERT_TRUE(this->store_->Release(kClientA, held, 1).ok());
  EXPECT_EQ(this->store_->GetAttr(held).status().code(), proto::NOT_FOUND);
}

TYPED_TEST(OpenFilesTest, CreateAndOpenRecordsTheOpenInTheSameCommit) {
  this->Session(kClientA, 30000);
  proto::RequestId rid = Rid(kClientA, 1);
  uint64_t ino = 0;
  {
    ASSERT_FALSE(this->store_->BeginCall(rid)->has_value());
    MetaStore::CallScope scope(rid, /*open_handle=*/9);
    auto a = this->store_->Create(Caller(), 1, "f", 0644, true);
    ASSERT_TRUE(a.ok());
    ino = a->ino();
    EXPECT_TRUE(scope.opened());
  }
  this->store_->EndCall(rid);
  EXPECT_EQ(this->store_->CountOpenRecords(), 1u);
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  this->ExpectOrphan(ino, "f");
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 9).ok());
  this->ExpectReclaimed(ino);
}

// Runs `op` as the mutating call `rid`, as the service does: the result
// inode of a committed first attempt, or nullopt when it ran now.
template <typename Op>
std::optional<uint64_t> Call(MetaStore& store, const proto::RequestId& rid, Op op) {
  auto done = store.BeginCall(rid);
  EXPECT_TRUE(done.ok());
  if (done.ok() && done->has_value()) return **done;
  {
    MetaStore::CallScope scope(rid);
    op();
  }
  store.EndCall(rid);
  return std::nullopt;
}

TYPED_TEST(OpenFilesTest, ARetriedCallGetsTheFirstResultAlsoAfterARestart) {
  MetaStore& s = *this->store_;
  uint64_t created = 0;
  EXPECT_FALSE(Call(s, Rid(kClientA, 1), [&] { created = s.Create(Caller(), 1, "f", 0644, true)->ino(); }));
  // The reply was lost; the retry is answered from the record, not run again (EEXIST).
  auto again = Call(s, Rid(kClientA, 1), [&] { ADD_FAILURE() << "create ran twice"; });
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, created);

  // (Request 1 still pending at the client: its result stays.)
  EXPECT_FALSE(Call(s, Rid(kClientA, 2, 1), [&] { ASSERT_TRUE(s.Unlink(Caller(), 1, "f").ok()); }));
  this->Restart();
  MetaStore& r = *this->store_;
  EXPECT_TRUE(Call(r, Rid(kClientA, 2, 1), [&] { ADD_FAILURE() << "unlink ran twice (ENOENT)"; }).has_value());
  EXPECT_TRUE(Call(r, Rid(kClientA, 1), [&] { ADD_FAILURE() << "create ran twice"; }).has_value());

  // A call that failed committed nothing: its retry runs again.
  int runs = 0;
  auto fail = [&] {
    ++runs;
    EXPECT_EQ(r.Unlink(Caller(), 1, "nope").code(), proto::NOT_FOUND);
  };
  EXPECT_FALSE(Call(r, Rid(kClientA, 3, 1), fail));
  EXPECT_FALSE(Call(r, Rid(kClientA, 3, 1), fail));
  EXPECT_EQ(runs, 2);
  // Another client's request 1 is its own.
  EXPECT_FALSE(Call(r, Rid(kClientB, 1), [&] { ASSERT_TRUE(r.Mkdir(Caller(), 1, "d", 0755).ok()); }));
}

TYPED_TEST(OpenFilesTest, ResultsAreForgottenOnceAnsweredOrWithTheSession) {
  this->Session(kClientA, 1000);
  MetaStore& s = *this->store_;
  EXPECT_FALSE(Call(s, Rid(kClientA, 1), [&] { ASSERT_TRUE(s.Mkdir(Caller(), 1, "a", 0755).ok()); }));
  EXPECT_FALSE(Call(s, Rid(kClientA, 2), [&] { ASSERT_TRUE(s.Mkdir(Caller(), 1, "b", 0755).ok()); }));
  // The client has every answer below 3: 1 and 2 go with request 3.
  EXPECT_FALSE(Call(s, Rid(kClientA, 3, 3), [&] { ASSERT_TRUE(s.Mkdir(Caller(), 1, "c", 0755).ok()); }));
  int rows = 0;
  ASSERT_TRUE(this->kv_->Scan(Cf::kRequests, "", "", [&](std::string_view, std::string_view) {
    ++rows;
    return true;
  }).ok());
  EXPECT_EQ(rows, 1);
  this->clock_.Advance(1000);
  EXPECT_EQ(*s.ExpireSessions(), 1);
  rows = 0;
  ASSERT_TRUE(this->kv_->Scan(Cf::kRequests, "", "", [&](std::string_view, std::string_view) {
    ++rows;
    return true;
  }).ok());
  EXPECT_EQ(rows, 0);
}

TYPED_TEST(OpenFilesTest, ARetryThatOvertakesItsFirstAttemptWaitsForIt) {
  MetaStore& s = *this->store_;
  proto::RequestId rid = Rid(kClientA, 5);
  ASSERT_FALSE(s.BeginCall(rid)->has_value());
  // The retry arrives while the first attempt runs (no record yet).
  auto retry = std::async(std::launch::async, [&] { return s.BeginCall(rid); });
  uint64_t ino = 0;
  {
    MetaStore::CallScope scope(rid);
    ino = s.Create(Caller(), 1, "f", 0644, true)->ino();
  }
  s.EndCall(rid);
  auto answered = retry.get();
  ASSERT_TRUE(answered.ok());
  ASSERT_TRUE(answered->has_value()) << "the retry ran beside its first attempt";
  EXPECT_EQ(**answered, ino);
}

TYPED_TEST(OpenFilesTest, OpensAndReleasesWaitForNoSyncButAFreeingReleaseDoes) {
  this->Session(kClientA, 30000);
  uint64_t ino = this->Create("f");
  const int before = this->counting_->syncs.load();
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 1).ok());
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, ino, 2).ok());
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 2).ok());
  EXPECT_EQ(this->counting_->syncs.load(), before);
  EXPECT_EQ(this->store_->CountOpenRecords(), 1u);

  // The unlink's sync carries the record written before it: after a restart
  // the orphan is still held.
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  EXPECT_EQ(this->counting_->syncs.load(), before + 1);
  this->Restart();
  this->ExpectOrphan(ino, "f");
  const int at_restart = this->counting_->syncs.load();
  ASSERT_TRUE(this->store_->Release(kClientA, ino, 1).ok());  // frees: its chunks go from here on
  EXPECT_EQ(this->counting_->syncs.load(), at_restart + 1);
  this->ExpectReclaimed(ino);
}

// The reclaimer finishes one queued file after another; a finished entry a
// host crash brings back is only reclaimed again, so none waits for a sync.
TYPED_TEST(OpenFilesTest, FinishingAReclaimWaitsForNoSync) {
  uint64_t ino = this->Create("f");
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "f").ok());
  this->ExpectReclaimed(ino);
  const int before = this->counting_->syncs.load();
  ASSERT_TRUE(this->store_->FinishReclaim(ino).ok());
  EXPECT_EQ(this->counting_->syncs.load(), before);
  EXPECT_TRUE(this->Queued().empty());
}

TYPED_TEST(OpenFilesTest, AfterAHostCrashUnlinkedFilesStayUntilTheGracePeriodEnds) {
  this->Session(kClientA, 30000);
  uint64_t reopened = this->Create("reopened");
  uint64_t lost = this->Create("lost");
  uint64_t closed = this->Create("closed");
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, reopened, 1).ok());
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, lost, 2).ok());
  const uint64_t instance = this->store_->instance_id();

  // The host goes down with both records unsynced; meta starts on a new boot.
  this->LoseOpenRecord(kClientA, reopened, 1);
  this->LoseOpenRecord(kClientA, lost, 2);
  this->Restart("boot-2");
  EXPECT_NE(this->store_->instance_id(), instance);
  EXPECT_TRUE(this->store_->InGrace());
  EXPECT_EQ(this->store_->CountOpenRecords(), 0u);
  // In the grace period the last link of any regular file leaves an orphan.
  for (const char* name : {"reopened", "lost", "closed"}) ASSERT_TRUE(this->store_->Unlink(Caller(), 1, name).ok());
  EXPECT_EQ(this->store_->CountOrphans(), 3u);
  this->ExpectOrphan(closed, "closed");
  // The client sees the new instance and records its open again (the other
  // handle belonged to a process that died with the host).
  ASSERT_TRUE(this->store_->RecordOpen(kClientA, reopened, 1).ok());

  this->clock_.Advance(30000);
  this->Session(kClientA, 30000);
  EXPECT_EQ(*this->store_->ExpireSessions(), 0);
  EXPECT_TRUE(this->store_->InGrace());
  EXPECT_EQ(this->store_->CountOrphans(), 3u);
  this->clock_.Advance(30001);
  this->Session(kClientA, 30000);
  EXPECT_FALSE(this->store_->InGrace());
  EXPECT_EQ(*this->store_->ExpireSessions(), 0);  // ends the grace period: frees the orphans nobody holds
  EXPECT_EQ(this->store_->CountOrphans(), 1u);
  EXPECT_EQ(this->store_->GetAttr(lost).status().code(), proto::NOT_FOUND);
  EXPECT_EQ(this->store_->GetAttr(closed).status().code(), proto::NOT_FOUND);
  auto a = this->store_->GetAttr(reopened);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->nlink(), 0u);
  ASSERT_TRUE(this->store_->Release(kClientA, reopened, 1).ok());
  EXPECT_EQ(this->store_->GetAttr(reopened).status().code(), proto::NOT_FOUND);

  // A restart on the same boot (meta alone crashed: its log survived) has no
  // grace period: a closed file goes at its unlink.
  this->Restart("boot-2");
  EXPECT_FALSE(this->store_->InGrace());
  uint64_t plain = this->Create("plain");
  ASSERT_TRUE(this->store_->Unlink(Caller(), 1, "plain").ok());
  EXPECT_EQ(this->store_->GetAttr(plain).status().code(), proto::NOT_FOUND);
}

}  // namespace
}  // namespace shoal::meta
