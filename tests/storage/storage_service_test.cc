// The storage service on its event loop, through a real RPC client: what a
// stuck disk or a greedy peer must not do to everyone else.
#include "storage/storage_service.h"

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <mutex>

#include "common/rpc/client.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/loop_channel.h"
#include "proto/read_records.h"
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

// STORAGE_READ_PACKED against a real (in-memory) store, through a
// LoopChannel: the item records in, the result records and payload out.
class PackedReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewMemoryChunkStore();
    auto n = testing::StorageNode::Start(&transport_, "storage1:0", kCreds, 101, store_.get());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    node_ = std::move(n).value();
    auto l = loop::EventLoop::Start({});
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    client_loop_ = std::move(l).value();
    channel_ = std::make_unique<rpc::LoopChannel>(rpc::LoopChannel::Options{"storage1:0", kCreds}, &transport_,
                                                  client_loop_.get());
  }
  void TearDown() override {
    channel_.reset();
    client_loop_.reset();
    node_.reset();
  }

  struct Reply {
    Status status;
    std::string message;
    uint32_t payload_len = 0;
  };
  Reply Call(std::string message, std::vector<iovec> sink) {
    std::promise<Reply> p;
    client_loop_->Post([&] {
      channel_->CallOnLoop(proto::STORAGE_READ_PACKED, std::move(message), {}, std::move(sink), 10000,
                           [&](Status st, const std::string& msg, uint32_t len) { p.set_value({st, msg, len}); });
    });
    return p.get_future().get();
  }
  static proto::ReadItemRecord Item(uint32_t target, uint64_t inode, uint32_t offset, uint32_t length) {
    proto::ReadItemRecord r;
    r.target_id = target;
    r.chunk_size = 1 << 20;
    r.inode = inode;
    r.offset = offset;
    r.length = length;
    return r;
  }

  rpc::InprocTransport transport_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<testing::StorageNode> node_;
  std::unique_ptr<loop::EventLoop> client_loop_;
  std::unique_ptr<rpc::LoopChannel> channel_;
};

TEST_F(PackedReadTest, ItemsComeBackInOrderWithPerItemResults) {
  std::vector<uint8_t> data(8192);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  ChunkWrite w;
  w.inode = 9;
  w.data = data.data();
  w.length = static_cast<uint32_t>(data.size());
  w.chunk_size = 1 << 20;
  ASSERT_TRUE(store_->Write(w).ok());

  // OK (unaligned), a target this node does not have, OK (a hole: zeros).
  std::string msg;
  proto::AppendReadItem(&msg, Item(101, 9, 100, 5000));
  proto::AppendReadItem(&msg, Item(999, 9, 0, 4096));
  proto::AppendReadItem(&msg, Item(101, 10, 0, 4096));
  std::vector<uint8_t> got(5000 + 4096, 0xEE);
  Reply r = Call(msg, {{got.data(), got.size()}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.payload_len, 5000u + 4096u);  // the failed item sends no bytes

  proto::ReadResultsReader results(r.message, 3);
  ASSERT_TRUE(results.Valid());
  EXPECT_EQ(results.code(0), proto::OK);
  EXPECT_EQ(results.NextMessage(0), "");
  EXPECT_EQ(results.code(1), proto::NOT_FOUND);
  EXPECT_NE(results.NextMessage(1).find("no target 999"), std::string_view::npos);
  EXPECT_EQ(results.code(2), proto::OK);
  EXPECT_EQ(0, std::memcmp(got.data(), data.data() + 100, 5000));
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 5000, got.end()), std::vector<uint8_t>(4096, 0));
}

TEST_F(PackedReadTest, AMessageThatIsNotWholeRecordsIsRefused) {
  std::string msg;
  proto::AppendReadItem(&msg, Item(101, 9, 0, 4096));
  msg.pop_back();
  Reply r = Call(msg, {});
  EXPECT_EQ(r.status.code(), proto::PROTOCOL_ERROR) << r.status.ToString();
}

TEST_F(PackedReadTest, TooManyBytesAreRefusedBeforeAnyRead) {
  std::string msg;
  for (int i = 0; i < 65; ++i) proto::AppendReadItem(&msg, Item(101, 9, 0, 1 << 20));  // over max_read_bytes
  Reply r = Call(msg, {});
  EXPECT_EQ(r.status.code(), proto::TOO_LARGE) << r.status.ToString();
}

TEST(ReadRecordsTest, ResultsRoundTripAndInconsistentSizesAreCaught) {
  proto::ReadResultsWriter w(3);
  w.Set(0, proto::OK, "ignored for OK");
  w.Set(1, proto::CHECKSUM_MISMATCH, "bad block");
  w.Set(2, proto::IO_ERROR, "");
  std::string msg = w.Take();
  EXPECT_EQ(msg.size(), 3 * proto::kReadResultBytes + 9);
  proto::ReadResultsReader r(msg, 3);
  ASSERT_TRUE(r.Valid());
  EXPECT_EQ(r.code(0), proto::OK);
  EXPECT_EQ(r.NextMessage(0), "");
  EXPECT_EQ(r.code(1), proto::CHECKSUM_MISMATCH);
  EXPECT_EQ(r.NextMessage(1), "bad block");
  EXPECT_EQ(r.code(2), proto::IO_ERROR);
  EXPECT_EQ(r.NextMessage(2), "");
  EXPECT_FALSE(proto::ReadResultsReader(msg, 4).Valid());                    // fewer records than items
  EXPECT_FALSE(proto::ReadResultsReader(msg + "x", 3).Valid());              // trailing bytes
  EXPECT_FALSE(proto::ReadResultsReader(msg.substr(0, msg.size() - 1), 3).Valid());  // a message cut short

  size_t n = 0;
  std::string items;
  proto::ReadItemRecord a;
  a.target_id = 7;
  a.inode = 1ull << 40;
  a.index = 3;
  a.offset = 4095;
  a.length = 2;
  a.chunk_size = 4096;
  a.chain_version = 11;
  proto::AppendReadItem(&items, a);
  ASSERT_TRUE(proto::CountReadItems(items, &n));
  EXPECT_EQ(n, 1u);
  proto::ReadItemRecord b = proto::ReadItemAt(items, 0);
  EXPECT_EQ(0, std::memcmp(&a, &b, sizeof(a)));
  EXPECT_FALSE(proto::CountReadItems(items + "x", &n));
}

}  // namespace
}  // namespace shoal::storage
