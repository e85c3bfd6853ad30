// BatchReader against the in-process cluster: exact bytes with many reads in
// flight, the in-flight cap, per-item failures, end of file, Reap's timeout
// and destruction while reads are out.
#include "client/batch_reader.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/client/inproc_cluster.h"

namespace shoal::client {
namespace {

constexpr uint32_t kChunk = 64 << 10;
constexpr size_t kFileSize = 2 * 1024 * 1024 + 333;  // 32 chunks and a bit, on all three nodes

class BatchReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start());
    // Generous attempts, so that a loaded machine never fails the setup. (On
    // the event-loop client a fresh client's first large Write sometimes loses
    // its first attempt and goes through on the retry: 2 s here, not 10.)
    ClientOptions patient = cluster_.Options();
    patient.io_timeout_ms = 2000;
    patient.io_attempts = 6;
    client_ = cluster_.Connect(patient);
    ASSERT_NE(client_, nullptr);
    ClientOptions o = cluster_.Options();
    o.io_timeout_ms = 500;
    o.io_attempts = 2;
    failing_client_ = cluster_.Connect(o);  // for reads meant to fail or time out: quickly
    ASSERT_NE(failing_client_, nullptr);
    ASSERT_TRUE(client_->SetLayout(ProcessCaller(), 1, kChunk, 3).ok());
    auto f = client_->Create(ProcessCaller(), 1, "f", 0644, true);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    data_.resize(kFileSize);
    std::mt19937_64 rng(7);
    for (auto& b : data_) b = static_cast<uint8_t>(rng());
    auto n = client_->Write(*f, 0, data_.size(), data_.data());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    auto a = client_->UpdateLength(f->ino(), data_.size());
    ASSERT_TRUE(a.ok());
    file_ = *a;
    // Connect the failing client to every server now, so that the faults a
    // test injects hit its reads, not its connection handshakes.
    std::vector<uint8_t> all(kFileSize);
    auto warm = failing_client_->Read(file_, 0, kFileSize, all.data());
    ASSERT_TRUE(warm.ok()) << warm.status().ToString();
  }

  void DelayAllNodes(int ms) {
    for (int node = 1; node <= testing::InprocCluster::kNodes; ++node) cluster_.FaultsFor(node).delay_ms = ms;
  }

  testing::InprocCluster cluster_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Client> failing_client_;  // 500 ms per attempt, 2 attempts
  std::vector<uint8_t> data_;
  Attr file_;
};

TEST_F(BatchReaderTest, ManyReadsInFlightReturnExactBytesAndNeverExceedTheCap) {
  constexpr size_t kCap = 24, kReads = 600, kMaxLen = 3 * kChunk;
  BatchReader reader(client_.get(), kCap);
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(kMaxLen));
  std::vector<BatchReader::Item> items(kReads);
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < kReads; ++i) {
    size_t len = 1 + rng() % kMaxLen;
    items[i] = {&file_, rng() % (kFileSize - len), len, bufs[i].data(), i};
  }
  cluster_.FaultsFor(2).delay_ms = 2;  // one slow server: completions arrive out of order
  std::set<uint64_t> seen;
  std::vector<BatchReader::Completion> done(kCap);
  size_t next = 0, max_seen = 0;
  while (seen.size() < kReads) {
    // Odd rounds submit one at a time, even rounds as many as fit at once.
    if (seen.size() % 2) {
      if (next < kReads && reader.Submit(items[next]).ok()) ++next;
    } else {
      next += reader.Submit(items.data() + next, kReads - next);
    }
    max_seen = std::max(max_seen, reader.in_flight());
    ASSERT_LE(reader.in_flight(), kCap);
    size_t n = reader.Reap(done.data(), done.size(), 1, 10000);
    ASSERT_GT(n, 0u) << "no completion within 10 s";
    for (size_t k = 0; k < n; ++k) {
      const auto& c = done[k];
      ASSERT_TRUE(c.status.ok()) << c.status.ToString();
      ASSERT_TRUE(seen.insert(c.user_data).second) << "completed twice: " << c.user_data;
      const auto& it = items[c.user_data];
      ASSERT_EQ(c.bytes, it.length);
      ASSERT_EQ(0, memcmp(bufs[c.user_data].data(), data_.data() + it.offset, it.length)) << "read " << c.user_data;
    }
  }
  EXPECT_EQ(reader.in_flight(), 0u);
  EXPECT_EQ(max_seen, kCap);  // the ring was filled
}

TEST_F(BatchReaderTest, AFullRingRefusesTheNextItemUntilOneIsReaped) {
  DelayAllNodes(100);
  BatchReader reader(client_.get(), 4);
  std::vector<uint8_t> buf(5 * 4096);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(reader.Submit({&file_, i * 4096, 4096, buf.data() + i * 4096, i}).ok());
  Status full = reader.Submit({&file_, 0, 4096, buf.data() + 4 * 4096, 4});
  EXPECT_EQ(full.code(), proto::OUT_OF_RANGE) << full.ToString();
  BatchReader::Item batch[2] = {{&file_, 0, 4096, buf.data() + 4 * 4096, 4}, {&file_, 0, 1, buf.data(), 5}};
  EXPECT_EQ(reader.Submit(batch, 2), 0u);
  EXPECT_EQ(reader.in_flight(), 4u);
  BatchReader::Completion c;
  ASSERT_EQ(reader.Reap(&c, 1, 1, 10000), 1u);
  EXPECT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_EQ(reader.in_flight(), 3u);
  EXPECT_EQ(reader.Submit(batch, 2), 1u);  // room for exactly one
  BatchReader::Completion rest[4];
  size_t got = 0;
  while (got < 4) {
    size_t n = reader.Reap(rest + got, 4 - got, 1, 10000);
    ASSERT_GT(n, 0u);
    got += n;
  }
  for (const auto& r : rest) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

TEST_F(BatchReaderTest, BadItemsAreRefusedOrFailAlone) {
  BatchReader reader(failing_client_.get(), 8);
  std::vector<uint8_t> buf(4 * kChunk);
  EXPECT_EQ(reader.Submit({nullptr, 0, 10, buf.data(), 1}).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(reader.Submit({&file_, 0, 10, nullptr, 1}).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(reader.in_flight(), 0u);

  auto root = client_->GetAttr(1);
  ASSERT_TRUE(root.ok());
  // Chunk 0's server refuses every connection; chunk 1 and 2 are elsewhere.
  auto down = client_->Place(file_.layout(), 0);
  ASSERT_TRUE(down.ok());
  int down_node = static_cast<int>(down->node_id);
  for (uint64_t idx = 1; idx < 3; ++idx) ASSERT_NE(client_->Place(file_.layout(), idx)->node_id, down->node_id);
  cluster_.FaultsFor(down_node).refuse_connect = true;
  cluster_.FaultsFor(down_node).fail_writes = true;

  ASSERT_TRUE(reader.Submit({&*root, 0, 10, buf.data(), 1}).ok());                      // a directory
  ASSERT_TRUE(reader.Submit({&file_, 10, 100, buf.data() + kChunk, 2}).ok());          // on the dead server
  ASSERT_TRUE(reader.Submit({&file_, kChunk, kChunk, buf.data() + 2 * kChunk, 3}).ok());  // fine
  ASSERT_TRUE(reader.Submit({&file_, 2 * kChunk + 5, 50, buf.data() + 3 * kChunk, 4}).ok());  // fine
  std::map<uint64_t, BatchReader::Completion> by_tag;
  BatchReader::Completion done[4];
  while (by_tag.size() < 4) {
    size_t n = reader.Reap(done, 4, 1, 20000);
    ASSERT_GT(n, 0u);
    for (size_t i = 0; i < n; ++i) by_tag[done[i].user_data] = done[i];
  }
  EXPECT_EQ(by_tag[1].status.code(), proto::IS_DIRECTORY) << by_tag[1].status.ToString();
  EXPECT_FALSE(by_tag[2].status.ok());
  EXPECT_EQ(by_tag[2].bytes, 0u);
  ASSERT_TRUE(by_tag[3].status.ok()) << by_tag[3].status.ToString();
  EXPECT_EQ(by_tag[3].bytes, kChunk);
  EXPECT_EQ(0, memcmp(buf.data() + 2 * kChunk, data_.data() + kChunk, kChunk));
  ASSERT_TRUE(by_tag[4].status.ok()) << by_tag[4].status.ToString();
  EXPECT_EQ(0, memcmp(buf.data() + 3 * kChunk, data_.data() + 2 * kChunk + 5, 50));
}

// Frames towards a node are counted by dropping them (the reads then fail
// after their attempts): reads submitted together share one request per
// server and attempt. (Reads submitted one by one may or may not share one,
// depending on how the client's event loop catches them.)
TEST_F(BatchReaderTest, ItemsSubmittedTogetherShareOneRequestPerServer) {
  constexpr size_t kReads = 24;
  auto& faults = cluster_.FaultsFor(static_cast<int>(client_->Place(file_.layout(), 0)->node_id));
  std::vector<uint8_t> buf(kReads * 1024);
  std::vector<BatchReader::Item> items;
  for (size_t i = 0; i < kReads; ++i) items.push_back({&file_, i * 2048, 1024, buf.data() + i * 1024, i});  // all in chunk 0
  auto frames_sent = [&](bool together) {
    BatchReader reader(failing_client_.get(), kReads);
    faults.drop_next_frames = 100000;
    if (together) {
      EXPECT_EQ(reader.Submit(items.data(), items.size()), kReads);
    } else {
      for (const auto& it : items) EXPECT_TRUE(reader.Submit(it).ok());
    }
    BatchReader::Completion done[kReads];
    for (size_t got = 0; got < kReads;) {
      size_t n = reader.Reap(done + got, kReads - got, 1, 20000);
      EXPECT_GT(n, 0u);
      if (n == 0) break;
      got += n;
    }
    for (const auto& c : done) EXPECT_FALSE(c.status.ok());  // every frame was lost
    return 100000 - faults.drop_next_frames.exchange(0);
  };
  int together = frames_sent(true), alone = frames_sent(false);
  EXPECT_LE(together, 2) << "one request per attempt (io_attempts = 2)";
  EXPECT_LE(together, alone);
}

TEST_F(BatchReaderTest, ReadsPastTheEndAreShortLikePread) {
  BatchReader reader(client_.get(), 4);
  std::vector<uint8_t> buf(3 * 4096, 0xee);
  ASSERT_TRUE(reader.Submit({&file_, kFileSize - 100, 4096, buf.data(), 1}).ok());
  ASSERT_TRUE(reader.Submit({&file_, kFileSize, 4096, buf.data() + 4096, 2}).ok());
  ASSERT_TRUE(reader.Submit({&file_, kFileSize + 12345, 4096, buf.data() + 8192, 3}).ok());
  std::map<uint64_t, BatchReader::Completion> by_tag;
  BatchReader::Completion done[3];
  while (by_tag.size() < 3) {
    size_t n = reader.Reap(done, 3, 3, 10000);
    ASSERT_GT(n, 0u);
    for (size_t i = 0; i < n; ++i) by_tag[done[i].user_data] = done[i];
  }
  for (auto& [tag, c] : by_tag) EXPECT_TRUE(c.status.ok()) << tag << ": " << c.status.ToString();
  EXPECT_EQ(by_tag[1].bytes, 100u);
  EXPECT_EQ(0, memcmp(buf.data(), data_.data() + kFileSize - 100, 100));
  EXPECT_EQ(by_tag[2].bytes, 0u);
  EXPECT_EQ(by_tag[3].bytes, 0u);
  EXPECT_EQ(buf[4096], 0xee);  // nothing written for an empty read
}

TEST_F(BatchReaderTest, ReapTimesOutWithNothingReadyAndNeverWaitsForUnsubmittedReads) {
  BatchReader reader(failing_client_.get(), 4);
  BatchReader::Completion c;
  EXPECT_EQ(reader.Reap(&c, 1, 1, 60000), 0u);  // nothing in flight: returns at once
  EXPECT_EQ(reader.Reap(&c, 1, 1, -1), 0u);     // even with no time limit
  // The request is lost: the read cannot finish before its 500 ms attempt
  // times out, and then its retry succeeds.
  cluster_.FaultsFor(static_cast<int>(client_->Place(file_.layout(), 0)->node_id)).drop_next_frames = 1;
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(reader.Submit({&file_, 0, 4096, buf.data(), 9}).ok());
  EXPECT_EQ(reader.Reap(&c, 1, 1, 0), 0u);
  EXPECT_EQ(reader.Reap(&c, 1, 1, 20), 0u);
  EXPECT_EQ(reader.in_flight(), 1u);
  ASSERT_EQ(reader.Reap(&c, 1, 5, -1), 1u);  // min capped at the one in flight
  EXPECT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_EQ(c.user_data, 9u);
}

TEST_F(BatchReaderTest, DestroyingWithReadsInFlightWaitsForThem) {
  // Delayed frames are sent one after another per connection: a short delay
  // keeps the run short.
  DelayAllNodes(40);
  constexpr size_t kCap = 8;
  auto bufs = std::make_unique<std::vector<std::vector<uint8_t>>>(kCap, std::vector<uint8_t>(kChunk));
  {
    BatchReader reader(client_.get(), kCap);
    for (size_t i = 0; i < kCap; ++i)
      ASSERT_TRUE(reader.Submit({&file_, i * kChunk, kChunk, (*bufs)[i].data(), i}).ok());
    // Unreaped and (most) unfinished: the destructor waits for every read.
  }
  // Each read has landed before the destructor returned (a late one would be
  // a write into freed memory below, which ASan reports).
  for (size_t i = 0; i < kCap; ++i)
    EXPECT_EQ(0, memcmp((*bufs)[i].data(), data_.data() + i * kChunk, kChunk)) << "read " << i;
  bufs.reset();
  DelayAllNodes(0);
}

}  // namespace
}  // namespace shoal::client
