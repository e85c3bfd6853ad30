// The storage service on its event loop, through a real RPC client: what a
// stuck disk or a greedy peer must not do to everyone else.
#include "storage/storage_service.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "common/rpc/client.h"
#include "common/rpc/inproc_transport.h"
#include "proto/storage.pb.h"
#include "tests/common/eventually.h"
#include "tests/storage/storage_node.h"

namespace shoal::storage {
namespace {

const rpc::Credentials kCreds{"inproc", "0123456789abcdef0123456789abcdef", 2000};

// A disk that takes reads and never finishes them (until the test says so).
class StuckStore : public ChunkStore {
 public:
  void ReadOn(std::vector<ReadOp*> ops, std::function<void()> done, ReadEngine*) override {
    std::lock_guard<std::mutex> l(mu_);
    stuck_.push_back({std::move(ops), std::move(done)});
  }
  Result<uint64_t> Write(const ChunkWrite&) override { return Error(proto::IO_ERROR, "stuck"); }
  Status Truncate(uint64_t, uint64_t, uint32_t) override { return Status::OK(); }
  Status Remove(uint64_t) override { return Status::OK(); }

  size_t stuck() {
    std::lock_guard<std::mutex> l(mu_);
    return stuck_.size();
  }
  // Completes every stuck read with an error (on the caller's thread: the
  // test posts it to the loop).
  void Release() {
    std::vector<std::pair<std::vector<ReadOp*>, std::function<void()>>> all;
    {
      std::lock_guard<std::mutex> l(mu_);
      all.swap(stuck_);
    }
    for (auto& [ops, done] : all) {
      for (ReadOp* op : ops) op->status = Error(proto::IO_ERROR, "released");
      done();
    }
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::vector<ReadOp*>, std::function<void()>>> stuck_;
};

class StorageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = testing::StorageNode::Start(&transport_, "storage1:0", kCreds, 101, &store_);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    node_ = std::move(n).value();
  }
  void TearDown() override {
    // Stuck reads end on the loop that owns them before the node goes.
    std::promise<void> done;
    node_->loop().Post([&] {
      store_.Release();
      done.set_value();
    });
    done.get_future().wait();
    node_.reset();
  }
  std::unique_ptr<rpc::RpcChannel> Channel() {
    return std::make_unique<rpc::RpcChannel>(rpc::RpcChannel::Options{"storage1:0", kCreds}, &transport_);
  }
  static proto::ReadReq OneItem() {
    proto::ReadReq req;
    auto* item = req.add_items();
    item->mutable_chunk()->set_target_id(101);
    item->mutable_chunk()->set_inode(7);
    item->set_length(4096);
    item->set_chunk_size(1 << 20);
    return req;
  }

  rpc::InprocTransport transport_;
  StuckStore store_;
  std::unique_ptr<testing::StorageNode> node_;
};

TEST_F(StorageServiceTest, ADiskThatNeverCompletesDoesNotStopTheLoopServingOthers) {
  auto a = Channel();
  std::vector<uint8_t> buf(4096);
  std::promise<Status> read_done;
  a->Call(proto::STORAGE_READ, OneItem(), nullptr, 0, {{buf.data(), buf.size()}}, 60000,
          [&](Status st, const std::string&, uint32_t) { read_done.set_value(st); });
  ASSERT_TRUE(testutil::Eventually([&] { return store_.stuck() == 1; }));
  // The same connection and another one are still served by the same loop.
  proto::NodeStats stats;
  EXPECT_TRUE(a->CallSync(proto::STORAGE_STATS, proto::StatsReq(), &stats, 5000).ok());
  auto b = Channel();
  EXPECT_TRUE(b->CallSync(proto::STORAGE_STATS, proto::StatsReq(), &stats, 5000).ok());
  // Once the disk answers, so does the read.
  std::promise<void> released;
  node_->loop().Post([&] {
    store_.Release();
    released.set_value();
  });
  released.get_future().wait();
  auto f = read_done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  Status st = f.get();
  ASSERT_TRUE(st.ok()) << st.ToString();  // the call is fine; its item failed
}

TEST_F(StorageServiceTest, ABatchWithTooManyItemsIsRefusedBeforeAnyRead) {
  proto::ReadReq req;
  for (int i = 0; i < 16385; ++i) *req.add_items() = OneItem().items(0);
  auto c = Channel();
  proto::ReadRsp rsp;
  Status st = c->CallSync(proto::STORAGE_READ, req, &rsp, 5000);
  EXPECT_EQ(st.code(), proto::TOO_LARGE) << st.ToString();
  EXPECT_EQ(store_.stuck(), 0u);
}

TEST_F(StorageServiceTest, APeerThatPipelinesWithoutLimitIsStalledNotServedWithoutBound) {
  // Requests that never complete pile up to the per-connection limit; then
  // the server stops reading that connection, and others are still served.
  auto greedy = Channel();
  std::vector<uint8_t> buf(4096);
  std::atomic<int> ended{0};
  for (int i = 0; i < 1100; ++i)
    greedy->Call(proto::STORAGE_READ, OneItem(), nullptr, 0, {{buf.data(), buf.size()}}, 60000,
                 [&](Status, const std::string&, uint32_t) { ++ended; });
  ASSERT_TRUE(testutil::Eventually([&] { return node_->server().backpressure_stalls() > 0; }));
  EXPECT_LE(store_.stuck(), 1024u);  // max_requests_in_flight
  proto::NodeStats stats;
  auto other = Channel();
  EXPECT_TRUE(other->CallSync(proto::STORAGE_STATS, proto::StatsReq(), &stats, 5000).ok());
  greedy.reset();  // fails its calls (CANCELLED) before returning
  EXPECT_EQ(ended.load(), 1100);
}

}  // namespace
}  // namespace shoal::storage
