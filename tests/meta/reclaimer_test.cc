// The reclaimer against a real storage service (memory chunk store, in-process
// transport), with its grace period measured on a manual clock.
#include "meta/reclaimer.h"

#include <gtest/gtest.h>

#include <future>

#include "common/clock.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "meta/kv.h"
#include "storage/chunk_store.h"
#include "storage/storage_service.h"
#include "tests/common/eventually.h"
#include "tests/storage/storage_node.h"

namespace shoal::meta {
namespace {

constexpr uint32_t kChunk = 64 << 10;
constexpr int64_t kGraceMs = 30000;
const rpc::Credentials kCreds{"inproc", "0123456789abcdef0123456789abcdef", 2000};

class ReclaimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kv_ = NewMemoryKv();
    cluster_ = std::make_unique<ClusterManager>(kv_.get(), &clock_, "inproc", 60000);
    store_ = std::make_unique<MetaStore>(kv_.get(), [this] { return cluster_->PlacementChains(); });
    ASSERT_TRUE(store_->Init().ok());
    chunks_ = storage::NewMemoryChunkStore();
    auto node = testing::StorageNode::Start(&transport_, "storage1:0", kCreds, 101, chunks_.get());
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    node_ = std::move(node).value();
    proto::RegisterReq r;
    r.set_node_id(1);
    r.set_address("storage1:0");
    r.add_targets()->set_target_id(101);
    ASSERT_TRUE(cluster_->Register(r).ok());
    channels_ = std::make_unique<rpc::ChannelPool>(kCreds, &transport_, 64ull << 20, &clock_);
    reclaimer_ = std::make_unique<Reclaimer>(store_.get(), cluster_.get(), channels_.get(), 1000, kGraceMs, &clock_);
  }

  // Creates a file with one stored chunk and deletes it; returns its inode.
  uint64_t CreateAndDelete(const std::string& name) {
    proto::Caller root;
    auto f = store_->Create(root, 1, name, 0644, true);
    EXPECT_TRUE(f.ok());
    std::vector<uint8_t> bytes = Bytes();
    storage::ChunkWrite w;
    w.inode = f->ino();
    w.data = bytes.data();
    w.length = kChunk;
    w.chunk_size = kChunk;
    EXPECT_TRUE(chunks_->Write(w).ok());
    EXPECT_TRUE(Stored(f->ino()));
    EXPECT_TRUE(store_->Unlink(root, 1, name).ok());
    return f->ino();
  }
  static std::vector<uint8_t> Bytes() {
    std::vector<uint8_t> b(kChunk);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
    return b;
  }
  // True while the file's chunk still holds what was written.
  bool Stored(uint64_t ino) {
    storage::ReadOp op;
    op.inode = ino;
    op.length = kChunk;
    op.chunk_size = kChunk;
    std::promise<void> done;
    chunks_->Read({&op}, [&] { done.set_value(); });
    done.get_future().wait();
    return op.status.ok() && std::equal(op.data, op.data + kChunk, Bytes().begin());
  }

  ManualClock clock_;
  rpc::InprocTransport transport_;
  std::unique_ptr<Kv> kv_;
  std::unique_ptr<ClusterManager> cluster_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<storage::ChunkStore> chunks_;
  std::unique_ptr<testing::StorageNode> node_;
  std::unique_ptr<rpc::ChannelPool> channels_;
  std::unique_ptr<Reclaimer> reclaimer_;
};

TEST_F(ReclaimerTest, ChunksOfADeletedFileOutliveTheGracePeriodThenGo) {
  uint64_t ino = CreateAndDelete("f");
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);  // first seen now
  clock_.Advance(kGraceMs - 1);
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  EXPECT_TRUE(Stored(ino)) << "reclaimed inside the grace period";
  EXPECT_EQ(store_->PendingReclaims(10)->size(), 1u);
  clock_.Advance(1);
  EXPECT_EQ(*reclaimer_->RunOnce(), 1);
  EXPECT_FALSE(Stored(ino));
  EXPECT_TRUE(store_->PendingReclaims(10)->empty());
}

TEST_F(ReclaimerTest, TheGraceCountsFromWhenTheReclaimerFirstSawTheFile) {
  // Time that passed before the reclaimer knew of the file (a meta restart,
  // where its clock starts over) does not count: later, never earlier.
  uint64_t old_ino = CreateAndDelete("old");
  clock_.Advance(10 * kGraceMs);
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs / 2);
  uint64_t new_ino = CreateAndDelete("new");
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs / 2);
  EXPECT_EQ(*reclaimer_->RunOnce(), 1);  // only the older one
  EXPECT_FALSE(Stored(old_ino));
  EXPECT_TRUE(Stored(new_ino));
  clock_.Advance(kGraceMs / 2);
  EXPECT_EQ(*reclaimer_->RunOnce(), 1);
  EXPECT_FALSE(Stored(new_ino));
}

TEST_F(ReclaimerTest, TheBackgroundPassRunsOnTheClock) {
  uint64_t ino = CreateAndDelete("f");
  int64_t t0 = clock_.NowMs();
  reclaimer_->Start();
  ASSERT_TRUE(testutil::Eventually([&] { return clock_.HasWaitUntil(t0 + 1000); }));
  clock_.Advance(1000);  // the first pass sees the file
  ASSERT_TRUE(clock_.Settle());
  EXPECT_TRUE(Stored(ino));
  clock_.Advance(kGraceMs - 1000);  // passes wake every second; the grace ends at t0 + 1000 + kGraceMs
  ASSERT_TRUE(clock_.Settle());
  EXPECT_TRUE(Stored(ino));
  clock_.Advance(1000);
  ASSERT_TRUE(clock_.Settle());
  EXPECT_EQ(clock_.NowMs(), t0 + 1000 + kGraceMs);
  EXPECT_FALSE(Stored(ino));
  EXPECT_TRUE(store_->PendingReclaims(10)->empty());
}

// Deleting a dataset queues many files at once: a pass asks each target to
// remove up to 128 of them per request, not one request per file.
TEST_F(ReclaimerTest, APassRemovesManyFilesPerRequest) {
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 300; ++i) inodes.push_back(CreateAndDelete("f" + std::to_string(i)));
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs);
  EXPECT_EQ(*reclaimer_->RunOnce(), 300);
  EXPECT_EQ(node_->service().remove_requests(), 3u) << "300 files on one target: 128 + 128 + 44";
  for (uint64_t ino : inodes) EXPECT_FALSE(Stored(ino)) << ino;
  EXPECT_TRUE(store_->PendingReclaims(10)->empty());
}

TEST_F(ReclaimerTest, AnUnreachableTargetKeepsTheEntryForTheNextPass) {
  uint64_t ino = CreateAndDelete("f");
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs);
  transport_.FaultsFor("storage1:0").refuse_connect = true;
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  EXPECT_TRUE(Stored(ino));
  EXPECT_EQ(store_->PendingReclaims(10)->size(), 1u);
  transport_.FaultsFor("storage1:0").refuse_connect = false;
  EXPECT_EQ(*reclaimer_->RunOnce(), 1);
  EXPECT_FALSE(Stored(ino));
}

}  // namespace
}  // namespace shoal::meta
