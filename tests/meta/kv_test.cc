// The Kv contract, run against both backends.
#include "meta/kv.h"

#include <gtest/gtest.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "common/tsan.h"
#include "tests/common/eventually.h"

namespace shoal::meta {
namespace {

struct MemoryBackend {
  static std::unique_ptr<Kv> Open(const std::string&) { return NewMemoryKv(); }
  static constexpr bool kPersistent = false;
};
struct RocksBackend {
  static std::unique_ptr<Kv> Open(const std::string& dir) { return std::move(OpenRocksKv(dir)).value(); }
  static constexpr bool kPersistent = true;
};

template <typename B>
class KvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/kv_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    kv_ = B::Open(dir_);
  }
  void TearDown() override {
    kv_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::vector<std::string> Keys(Cf cf, const std::string& prefix, const std::string& after = "") {
    std::vector<std::string> out;
    EXPECT_TRUE(kv_->Scan(cf, prefix, after, [&](std::string_view k, std::string_view) {
      out.emplace_back(k);
      return true;
    }).ok());
    return out;
  }
  std::string dir_;
  std::unique_ptr<Kv> kv_;
};

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;
TYPED_TEST_SUITE(KvTest, Backends);

TYPED_TEST(KvTest, GetPutDeleteInColumnFamilies) {
  EXPECT_EQ(this->kv_->Get(Cf::kInodes, "a").status().code(), proto::NOT_FOUND);
  KvBatch b;
  b.Put(Cf::kInodes, "a", "1");
  b.Put(Cf::kDirents, "a", "2");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "a"), "1");
  EXPECT_EQ(*this->kv_->Get(Cf::kDirents, "a"), "2");
  EXPECT_EQ(this->kv_->Get(Cf::kCluster, "a").status().code(), proto::NOT_FOUND);
  KvBatch d;
  d.Delete(Cf::kInodes, "a");
  d.Put(Cf::kInodes, "b", std::string("x\0y", 3));
  ASSERT_TRUE(this->kv_->Write(d).ok());
  EXPECT_EQ(this->kv_->Get(Cf::kInodes, "a").status().code(), proto::NOT_FOUND);
  EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "b"), std::string("x\0y", 3));
}

TYPED_TEST(KvTest, ScanIsOrderedPrefixedAndResumable) {
  KvBatch b;
  for (auto k : {"p/c", "p/a", "q/a", "p/b", "o/z", "p/"}) b.Put(Cf::kDirents, k, "v");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/"), (std::vector<std::string>{"p/", "p/a", "p/b", "p/c"}));
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/", "p/a"), (std::vector<std::string>{"p/b", "p/c"}));
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/", "p/c"), std::vector<std::string>{});
  EXPECT_EQ(this->Keys(Cf::kDirents, "").size(), 6u);
  int seen = 0;
  ASSERT_TRUE(this->kv_->Scan(Cf::kDirents, "", "", [&](std::string_view, std::string_view) { return ++seen < 2; }).ok());
  EXPECT_EQ(seen, 2);
}

TYPED_TEST(KvTest, ScanOfAPrefixEndingInFfBytesFindsAllOfItAndNoMore) {
  KvBatch b;
  const std::string ff("a\xff\xff", 3);
  for (const std::string& k : {ff, ff + "x", std::string("a\xff\xfe"), std::string("b"), std::string("a\xff\xff\xff")})
    b.Put(Cf::kDirents, k, "v");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  EXPECT_EQ(this->Keys(Cf::kDirents, ff), (std::vector<std::string>{ff, ff + "x", ff + "\xff"}));
  EXPECT_EQ(this->Keys(Cf::kDirents, std::string("\xff")), std::vector<std::string>{});
}

// A scan stops at the end of its prefix, not at the next live key: deleted
// keys beyond the prefix (released opens, unlinked names) are not walked over.
TEST(RocksKvTest, AScanDoesNotWalkOverDeletedKeysBeyondItsPrefix) {
  std::string dir = ::testing::TempDir() + "/kv_" + std::to_string(getpid()) + "_tombstones";
  std::filesystem::remove_all(dir);
  auto kv = OpenRocksKv(dir);
  ASSERT_TRUE(kv.ok());
  KvBatch put, del;
  put.Put(Cf::kOpenFiles, "a1", "");
  put.Put(Cf::kOpenFiles, "z", "");
  for (int i = 0; i < 5000; ++i) {
    std::string k = "b" + std::to_string(100000 + i);
    put.Put(Cf::kOpenFiles, k, "");
    del.Delete(Cf::kOpenFiles, k);
  }
  ASSERT_TRUE((*kv)->Write(put).ok());
  ASSERT_TRUE((*kv)->Write(del).ok());
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  int found = 0;
  ASSERT_TRUE((*kv)->Scan(Cf::kOpenFiles, "a", "", [&](std::string_view, std::string_view) {
    ++found;
    return true;
  }).ok());
  uint64_t skipped = rocksdb::get_perf_context()->internal_delete_skipped_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_EQ(found, 1);
  EXPECT_LT(skipped, 10u) << "the scan walked over deleted keys past its prefix";
  kv->reset();
  std::filesystem::remove_all(dir);
}

TYPED_TEST(KvTest, WritesSurviveReopen) {
  if (!TypeParam::kPersistent) GTEST_SKIP() << "the in-memory backend is not persistent by design";
  KvBatch b;
  b.Put(Cf::kDeleteQueue, "k", "v");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  this->kv_.reset();
  this->kv_ = TypeParam::Open(this->dir_);
  EXPECT_EQ(*this->kv_->Get(Cf::kDeleteQueue, "k"), "v");
}

TYPED_TEST(KvTest, DeferredWritesAreVisibleAtOnceAndDurableAtWait) {
  uint64_t before = this->kv_->LastApplied();
  {
    DeferredSync scope(this->kv_.get());
    KvBatch b;
    b.Put(Cf::kInodes, "d", "1");
    ASSERT_TRUE(this->kv_->Write(b).ok());
    // Applied: visible to every reader before anything is synced.
    EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "d"), "1");
    EXPECT_EQ(this->kv_->LastApplied(), before + 1);
    {
      DeferredSync inner(this->kv_.get());  // inert: the outer scope collects this write
      KvBatch c;
      c.Put(Cf::kInodes, "e", "2");
      ASSERT_TRUE(this->kv_->Write(c).ok());
      EXPECT_TRUE(inner.Wait().ok());
    }
    ASSERT_TRUE(scope.Wait().ok());
  }
  EXPECT_EQ(this->kv_->LastApplied(), before + 2);
  // A scope that wrote nothing has nothing to wait for.
  DeferredSync reader(this->kv_.get());
  EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "e"), "2");
  EXPECT_TRUE(reader.Wait().ok());
}

TYPED_TEST(KvTest, ConcurrentDeferredWritersAllLand) {
#ifdef SHOAL_TSAN
  // RocksDB is not built with TSan: it orders its write-group leaders with
  // atomics in its own code, so concurrent Write()s into it look like races
  // in the WAL buffer. The in-memory Kv runs this under TSan; RocksDB runs it
  // in the other builds.
  if (TypeParam::kPersistent) GTEST_SKIP() << "RocksDB is not instrumented for ThreadSanitizer";
#endif
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        DeferredSync scope(this->kv_.get());
        KvBatch b;
        b.Put(Cf::kDirents, "k" + std::to_string(t) + "/" + std::to_string(i), "v");
        if (!this->kv_->Write(b).ok() || !scope.Wait().ok()) failures++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  if (TypeParam::kPersistent) {
    this->kv_.reset();
    this->kv_ = TypeParam::Open(this->dir_);
  }
  EXPECT_EQ(this->Keys(Cf::kDirents, "k").size(), static_cast<size_t>(kThreads * kEach));
}

// GroupCommitter over a stand-in log: records are appended to `wal` and the
// sync copies what the wal holds into `durable`, as an fsync makes the file's
// written bytes durable.
struct Log {
  std::mutex mu;
  std::vector<uint64_t> wal;
  std::set<uint64_t> durable;
  Status Sync() {
    std::lock_guard<std::mutex> l(mu);
    durable.insert(wal.begin(), wal.end());
    return Status::OK();
  }
};

TEST(GroupCommitTest, EveryReleasedWriterIsDurable) {
  Log log;
  GroupCommitter gc([&] {
    // A sync takes a while, so that writers pile up behind it.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return log.Sync();
  });
  constexpr int kThreads = 8, kEach = 200;
  std::atomic<int> lost{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        uint64_t id = t * 100000 + i;
        {
          std::lock_guard<std::mutex> l(log.mu);
          log.wal.push_back(id);
        }
        uint64_t seq = gc.Applied();
        ASSERT_TRUE(gc.SyncThrough(seq).ok());
        std::lock_guard<std::mutex> l(log.mu);
        if (!log.durable.count(id)) lost++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(gc.synced(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_LE(gc.sync_rounds(), static_cast<uint64_t>(kThreads * kEach));
  std::cout << "group commit: " << kThreads * kEach << " writes, " << gc.sync_rounds() << " syncs\n";
}

TEST(GroupCommitTest, WritersArrivingDuringASyncShareTheNextOne) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  GroupCommitter gc([&] {
    if (calls.fetch_add(1) == 0) released.wait();  // the first round hangs until released
    return Status::OK();
  });
  uint64_t a = gc.Applied();
  std::thread ta([&] { EXPECT_TRUE(gc.SyncThrough(a).ok()); });
  ASSERT_TRUE(testutil::Eventually([&] { return gc.sync_rounds() == 1; }));
  // Applied after the first round started: it must not cover them.
  uint64_t b = gc.Applied(), c = gc.Applied();
  std::thread tb([&] { EXPECT_TRUE(gc.SyncThrough(b).ok()); });
  std::thread tc([&] { EXPECT_TRUE(gc.SyncThrough(c).ok()); });
  EXPECT_EQ(gc.synced(), 0u);
  release.set_value();
  ta.join();
  tb.join();
  tc.join();
  // One round for a, one shared by b and c (whoever came first led it for both).
  EXPECT_EQ(gc.sync_rounds(), 2u);
  EXPECT_EQ(gc.synced(), 3u);
}

TEST(GroupCommitTest, AFailedSyncFailsItsWaitersAndALaterRoundRecovers) {
  int calls = 0;
  GroupCommitter gc([&] {
    return ++calls == 1 ? Error(proto::IO_ERROR, "disk gone") : Status::OK();
  });
  uint64_t a = gc.Applied();
  EXPECT_EQ(gc.SyncThrough(a).code(), proto::IO_ERROR);
  EXPECT_EQ(gc.SyncThrough(a).code(), proto::IO_ERROR);  // its round failed: never reported durable
  EXPECT_EQ(gc.synced(), 0u);
  uint64_t b = gc.Applied();
  EXPECT_TRUE(gc.SyncThrough(b).ok());  // a new round syncs everything applied, a too
  EXPECT_TRUE(gc.SyncThrough(a).ok());
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace shoal::meta
