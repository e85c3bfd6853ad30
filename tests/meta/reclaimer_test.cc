// The reclaimer against a real storage service (memory chunk store, in-process
// transport), with its grace period measured on a manual clock.
#include "meta/reclaimer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <mutex>

#include "common/clock.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "meta/kv.h"
#include "proto/storage.pb.h"
#include "storage/chunk_store.h"
#include "storage/storage_service.h"
#include "tests/common/eventually.h"
#include "tests/storage/storage_node.h"

namespace shoal::meta {
namespace {

constexpr uint32_t kChunk = 64 << 10;
constexpr int64_t kGraceMs = 30000;
const rpc::Credentials kCreds{"inproc", "0123456789abcdef0123456789abcdef", 2000};

// The memory store, except that removing inode `bad` fails, as a disk error
// in that inode's directory would.
class OneBadInodeStore : public storage::ChunkStore {
 public:
  explicit OneBadInodeStore(storage::ChunkStore* inner) : inner_(inner) {}
  void ReadOn(std::vector<storage::ReadOp*> ops, std::function<void()> done, storage::ReadEngine* engine) override {
    inner_->ReadOn(std::move(ops), std::move(done), engine);
  }
  Result<uint64_t> Write(const storage::ChunkWrite& w) override { return inner_->Write(w); }
  Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) override {
    return inner_->Truncate(inode, length, chunk_size);
  }
  Status Remove(uint64_t inode) override {
    if (inode == bad.load()) return Error(proto::IO_ERROR, "cannot remove inode " + std::to_string(inode));
    return inner_->Remove(inode);
  }
  std::atomic<uint64_t> bad{0};

 private:
  storage::ChunkStore* inner_;
};

class ReclaimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kv_ = NewMemoryKv();
    cluster_ = std::make_unique<ClusterManager>(kv_.get(), &clock_, "inproc", 60000);
    store_ = std::make_unique<MetaStore>(kv_.get(), [this] { return cluster_->PlacementChains(); });
    ASSERT_TRUE(store_->Init().ok());
    chunks_ = storage::NewMemoryChunkStore();
    served_ = std::make_unique<OneBadInodeStore>(chunks_.get());
    auto node = testing::StorageNode::Start(&transport_, "storage1:0", kCreds, 101, served_.get());
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
  std::unique_ptr<OneBadInodeStore> served_;  // chunks_, as the storage node serves it
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

// A removal that keeps failing keeps only its own entry, not the batch's.
TEST_F(ReclaimerTest, AnInodeThatFailsToGoHoldsUpNoOther) {
  std::vector<uint64_t> inodes;
  for (int i = 0; i < 10; ++i) inodes.push_back(CreateAndDelete("f" + std::to_string(i)));
  served_->bad = inodes[3];
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs);
  EXPECT_EQ(*reclaimer_->RunOnce(), 9);
  for (uint64_t ino : inodes) EXPECT_EQ(Stored(ino), ino == inodes[3]) << ino;
  ASSERT_EQ(store_->PendingReclaims(10)->size(), 1u);
  EXPECT_EQ(store_->PendingReclaims(10)->front().ino, inodes[3]);
  served_->bad = 0;
  EXPECT_EQ(*reclaimer_->RunOnce(), 1);
  EXPECT_FALSE(Stored(inodes[3]));
}

// During an upgrade a storage server may not know batches yet: it reads only
// RemoveReq.inode and answers an empty message. Meta sees that nothing was
// tried and asks again one inode at a time, instead of dropping the entries.
TEST_F(ReclaimerTest, AServerThatPredatesBatchesIsAskedOneInodeAtATime) {
  std::mutex mu;
  std::vector<uint64_t> asked;  // RemoveReq.inode of each request the old server got
  rpc::RpcServer::Options o;
  o.listen = "old:0";
  o.creds = kCreds;
  rpc::RpcServer old(o, &transport_);
  old.Register(proto::STORAGE_REMOVE, rpc::RpcServer::Dispatch::kPool, [&](std::shared_ptr<rpc::ServerCall> call) {
    proto::RemoveReq req;
    if (!call->Parse(&req)) return;
    {
      std::lock_guard<std::mutex> l(mu);
      asked.push_back(req.inode());
    }
    call->Reply(proto::Empty());
  });
  ASSERT_TRUE(old.Start().ok());
  proto::RegisterReq r;
  r.set_node_id(2);
  r.set_address("old:0");
  r.add_targets()->set_target_id(201);
  ASSERT_TRUE(cluster_->Register(r).ok());

  std::vector<uint64_t> inodes;
  for (int i = 0; i < 5; ++i) inodes.push_back(CreateAndDelete("f" + std::to_string(i)));
  EXPECT_EQ(*reclaimer_->RunOnce(), 0);
  clock_.Advance(kGraceMs);
  EXPECT_EQ(*reclaimer_->RunOnce(), 5);
  std::lock_guard<std::mutex> l(mu);
  std::vector<uint64_t> want(inodes), got;
  for (uint64_t ino : asked)
    if (ino) got.push_back(ino);
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want) << "each inode asked for by itself (after one batch the old server ignored)";
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
