// libshoal against in-process services (memory Kv, memory chunk stores) over
// the in-process transport, with faults injected between client and servers.
#include "client/client.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "meta/cluster_manager.h"
#include "meta/meta_service.h"
#include "meta/meta_store.h"
#include "storage/chunk_store.h"
#include "storage/storage_service.h"
#include "tests/storage/storage_node.h"
#include "tests/common/eventually.h"

namespace shoal::client {
namespace {

constexpr uint32_t kChunk = 64 << 10;
const rpc::Credentials kCreds{"inproc", "0123456789abcdef0123456789abcdef", 2000};

class ClientTest : public ::testing::Test {
 protected:
  // The client's deadlines and back-off run on the real clock, or on clock_
  // (ManualClockClientTest), where they move only when a test advances it.
  explicit ClientTest(bool manual_clock = false) : manual_clock_(manual_clock) {}

  void SetUp() override {
    kv_ = meta::NewMemoryKv();
    cluster_ = std::make_unique<meta::ClusterManager>(kv_.get(), &clock_, "inproc", 60000);
    store_ = std::make_unique<meta::MetaStore>(kv_.get(), [this] { return cluster_->PlacementChains(); });
    ASSERT_TRUE(store_->Init().ok());
    meta_server_ = Server("meta:0");
    meta::RegisterMetaService(*meta_server_, *store_, *cluster_, meta_stats_);
    ASSERT_TRUE(meta_server_->Start().ok());
    for (uint32_t node = 1; node <= 3; ++node) {
      std::string addr = "storage" + std::to_string(node) + ":0";
      chunks_.push_back(storage::NewMemoryChunkStore());
      auto n = testing::StorageNode::Start(&transport_, addr, kCreds, node * 100 + 1, chunks_.back().get());
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      storage_nodes_.push_back(std::move(n).value());
      proto::RegisterReq r;
      r.set_node_id(node);
      r.set_address(addr);
      r.add_targets()->set_target_id(node * 100 + 1);
      ASSERT_TRUE(cluster_->Register(r).ok());
    }
    ClientOptions o = OptionsForThisCluster();
    o.io_timeout_ms = 300;
    o.io_attempts = 3;
    o.clock = manual_clock_ ? static_cast<const Clock*>(&clock_) : RealClock();
    auto c = Client::Connect(o, &transport_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c).value();
    ASSERT_TRUE(client_->SetLayout(ProcessCaller(), 1, kChunk, 3).ok());
    auto f = client_->Create(ProcessCaller(), 1, "f", 0644, true);
    ASSERT_TRUE(f.ok());
    file_ = *f;
  }

  // What a client needs to reach this in-process cluster.
  static ClientOptions OptionsForThisCluster() {
    ClientOptions o;
    o.meta_address = "meta:0";
    o.cluster_id = kCreds.cluster_id;
    o.cluster_key = kCreds.key;
    return o;
  }

  std::unique_ptr<rpc::RpcServer> Server(const std::string& addr) {
    rpc::RpcServer::Options o;
    o.listen = addr;
    o.creds = kCreds;
    return std::make_unique<rpc::RpcServer>(o, &transport_);
  }

  std::string Data(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
  }
  Status Write(uint64_t off, const std::string& data) {
    auto n = client_->Write(file_, off, data.size(), reinterpret_cast<const uint8_t*>(data.data()));
    if (!n.ok()) return n.status();
    auto a = client_->UpdateLength(file_.ino(), off + data.size());
    if (!a.ok()) return a.status();
    file_ = *a;
    return Status::OK();
  }
  Result<std::string> Read(uint64_t off, size_t len) {
    std::string out(len, '\0');
    auto n = client_->Read(file_, off, len, reinterpret_cast<uint8_t*>(out.data()));
    if (!n.ok()) return n.status();
    out.resize(*n);
    return out;
  }
  // Starts a read of [off, off + len) and returns its result when it completes.
  struct Pending {
    std::string buf;
    std::promise<Result<size_t>> promise;
    std::future<Result<size_t>> result = promise.get_future();
    bool done() { return result.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  };
  std::unique_ptr<Pending> StartRead(uint64_t off, size_t len) {
    auto p = std::make_unique<Pending>();
    p->buf.assign(len, '\0');
    client_->ReadAsync(file_, off, len, reinterpret_cast<uint8_t*>(p->buf.data()),
                       [pp = p.get()](Result<size_t> r) { pp->promise.set_value(std::move(r)); });
    return p;
  }
  // Moves the clock to `start + ms` and lets whatever that makes due finish.
  void AdvanceTo(int64_t start, int64_t ms) {
    ASSERT_LE(clock_.NowMs(), start + ms);
    clock_.Advance(start + ms - clock_.NowMs());
    ASSERT_TRUE(clock_.Settle());
  }
  // Waits until something is scheduled on the clock for `start + ms`.
  bool Scheduled(int64_t start, int64_t ms) {
    return testutil::Eventually([&] { return clock_.HasWaitUntil(start + ms); });
  }

  // The in-process address serving chunk `index` of the test file.
  std::string AddressOf(uint64_t index) { return client_->Place(file_.layout(), index)->address; }

  rpc::InprocTransport transport_;
  ManualClock clock_;  // the cluster manager's always; the client's in ManualClockClientTest
  bool manual_clock_;
  std::unique_ptr<meta::Kv> kv_;
  std::unique_ptr<meta::ClusterManager> cluster_;
  std::unique_ptr<meta::MetaStore> store_;
  meta::MetaServiceStats meta_stats_;
  std::unique_ptr<rpc::RpcServer> meta_server_;
  std::vector<std::unique_ptr<storage::ChunkStore>> chunks_;
  std::vector<std::unique_ptr<testing::StorageNode>> storage_nodes_;
  std::unique_ptr<Client> client_;
  Attr file_;
};

class ManualClockClientTest : public ClientTest {
 protected:
  ManualClockClientTest() : ClientTest(true) {}
};


TEST_F(ClientTest, OpenFilesAreRecordedAgainWhenMetaRestarts) {
  ClientOptions o = OptionsForThisCluster();
  o.session_renew_ms = 20;
  auto holder = Client::Connect(o, &transport_);
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  uint64_t opened = 0, created = 0, released = 0;
  ASSERT_TRUE((*holder)->Open(ProcessCaller(), file_.ino(), O_RDONLY, &opened).ok());
  auto made = (*holder)->Create(ProcessCaller(), 1, "made", 0644, true, O_RDWR, &created);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_TRUE((*holder)->Open(ProcessCaller(), file_.ino(), O_RDONLY, &released).ok());
  ASSERT_TRUE((*holder)->Release(file_.ino(), released).ok());
  EXPECT_EQ(store_->CountOpenRecords(), 2u);

  // Meta's host goes down and takes the unsynced open records with it.
  meta_server_.reset();
  store_.reset();
  meta::KvBatch lost;
  ASSERT_TRUE(kv_->Scan(meta::Cf::kOpenFiles, "", "", [&](std::string_view k, std::string_view) {
                  if (k[0] == 'i' || k[0] == 'c') lost.Delete(meta::Cf::kOpenFiles, std::string(k));
                  return true;
                }).ok());
  ASSERT_TRUE(kv_->Write(lost).ok());
  store_ = std::make_unique<meta::MetaStore>(kv_.get(), [this] { return cluster_->PlacementChains(); });
  store_->set_host_boot_id("another boot");
  ASSERT_TRUE(store_->Init().ok());
  ASSERT_TRUE(store_->InGrace());
  meta_server_ = Server("meta:0");
  meta::RegisterMetaService(*meta_server_, *store_, *cluster_, meta_stats_);
  ASSERT_TRUE(meta_server_->Start().ok());
  EXPECT_EQ(store_->CountOpenRecords(), 0u);

  // The holder's next renewal sees a new meta and records both opens again
  // (the released one stays released).
  EXPECT_TRUE(testutil::Eventually([&] { return store_->CountOpenRecords() == 2; }));
  ASSERT_TRUE((*holder)->Release(made->ino(), created).ok());
  ASSERT_TRUE((*holder)->Release(file_.ino(), opened).ok());
  EXPECT_EQ(store_->CountOpenRecords(), 0u);
}

TEST_F(ClientTest, AnOpenWhoseTruncateFailsLeavesNoOpenRecord) {
  ASSERT_TRUE(Write(0, Data(2 * kChunk, 3)).ok());
  // The cut of O_TRUNC cannot reach storage: the open fails, and releases
  // the record it had made at meta.
  storage_nodes_.clear();
  uint64_t handle = 0;
  auto opened = client_->Open(ProcessCaller(), file_.ino(), O_WRONLY | O_TRUNC, &handle);
  EXPECT_FALSE(opened.ok());
  auto created = client_->Create(ProcessCaller(), 1, "f", 0644, false, O_WRONLY | O_TRUNC, &handle);
  EXPECT_FALSE(created.ok());
  EXPECT_EQ(store_->CountOpenRecords(), 0u);
}

TEST_F(ClientTest, StripedWritesAndReadsAcrossChunksAndHoles) {
  EXPECT_EQ(file_.layout().chunk_size(), kChunk);
  EXPECT_EQ(file_.layout().chains_size(), 3);
  std::string a = Data(5 * kChunk + 77, 1);
  ASSERT_TRUE(Write(100, a).ok());
  std::string b = Data(1000, 2);
  ASSERT_TRUE(Write(20 * kChunk, b).ok());  // leaves a hole
  auto all = Read(0, 21 * kChunk);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 20 * kChunk + 1000);
  EXPECT_EQ(all->substr(0, 100), std::string(100, '\0'));
  EXPECT_EQ(all->substr(100, a.size()), a);
  EXPECT_EQ(all->substr(100 + a.size(), 20 * kChunk - 100 - a.size()), std::string(20 * kChunk - 100 - a.size(), '\0'));
  EXPECT_EQ(all->substr(20 * kChunk), b);
  EXPECT_EQ(Read(21 * kChunk, 10)->size(), 0u);  // past the end
  // Every server holds some of it.
  for (auto& c : chunks_) EXPECT_GT(c->stats().writes.load(), 0u);
}

TEST_F(ManualClockClientTest, ALostRequestIsRetriedAfterItsDeadlineAndBackoff) {
  std::string a = Data(3 * kChunk, 3);
  ASSERT_TRUE(Write(0, a).ok());
  storage::ChunkStore* chunk1 = chunks_[client_->Place(file_.layout(), 1)->node_id - 1].get();
  uint64_t reads_before = chunk1->stats().reads.load();
  transport_.FaultsFor(AddressOf(1)).drop_next_frames = 1;
  int64_t t0 = clock_.NowMs();
  auto read = StartRead(kChunk, kChunk);  // one request, to the server of chunk 1
  // Sent by the client's loop, through the transport's proxy: soon, not at once.
  ASSERT_TRUE(testutil::Eventually([&] { return transport_.FaultsFor(AddressOf(1)).drop_next_frames.load() == 0; }));
  ASSERT_TRUE(Scheduled(t0, 300));  // the deadline of the lost request
  AdvanceTo(t0, 299);
  EXPECT_FALSE(read->done());
  AdvanceTo(t0, 300);  // times out; the retry waits 40 ms
  EXPECT_FALSE(read->done());
  ASSERT_TRUE(Scheduled(t0, 340));
  AdvanceTo(t0, 339);
  EXPECT_EQ(chunk1->stats().reads.load(), reads_before);  // not resent early
  AdvanceTo(t0, 340);
  ASSERT_TRUE(testutil::Eventually([&] { return read->done(); }));
  auto got = read->result.get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(read->buf, a.substr(kChunk, kChunk));
  EXPECT_EQ(chunk1->stats().reads.load(), reads_before + 1);
}

TEST_F(ManualClockClientTest, ASilentServerFailsTheReadOnTheBackoffSchedule) {
  std::string a = Data(kChunk, 5);
  ASSERT_TRUE(Write(0, a).ok());
  auto& f = transport_.FaultsFor(AddressOf(0));
  f.drop_next_frames = 100;  // the server never answers
  auto sent = [&] { return 100 - f.drop_next_frames.load(); };
  int64_t t0 = clock_.NowMs();
  auto read = StartRead(0, kChunk);
  ASSERT_TRUE(testutil::Eventually([&] { return sent() == 1; }));  // sent by the loop, soon
  // Attempt n times out 300 ms after it was sent, then waits 20 << n ms:
  // sent at 0, 340 (300 + 40) and 720 (640 + 80); fails at 1020.
  const int64_t sends[] = {0, 340, 720};
  for (int n = 1; n <= 2; ++n) {
    int64_t deadline = sends[n - 1] + 300;
    ASSERT_TRUE(Scheduled(t0, deadline)) << n;
    AdvanceTo(t0, deadline - 1);
    EXPECT_EQ(sent(), n);
    AdvanceTo(t0, deadline);
    ASSERT_TRUE(Scheduled(t0, sends[n])) << "back-off after attempt " << n;
    AdvanceTo(t0, sends[n] - 1);
    EXPECT_EQ(sent(), n) << "resent before the back-off ended";
    AdvanceTo(t0, sends[n]);
    EXPECT_TRUE(testutil::Eventually([&] { return sent() == n + 1; }));
    EXPECT_FALSE(read->done());
  }
  ASSERT_TRUE(Scheduled(t0, 1020));
  AdvanceTo(t0, 1019);
  EXPECT_FALSE(read->done()) << "failed before the last attempt's deadline";
  AdvanceTo(t0, 1020);
  ASSERT_TRUE(read->done());
  EXPECT_EQ(read->result.get().status().code(), proto::TIMEOUT);
  EXPECT_EQ(sent(), 3);
  // The server answers again: so does the client, with no time passing.
  f.drop_next_frames = 0;
  EXPECT_EQ(*Read(0, kChunk), a);
}

TEST_F(ManualClockClientTest, ADeadServerFailsTheReadWithinBoundedRetries) {
  ASSERT_TRUE(Write(0, Data(3 * kChunk, 4)).ok());
  auto& f = transport_.FaultsFor(AddressOf(2));
  f.fail_writes = true;
  f.refuse_connect = true;
  int64_t t0 = clock_.NowMs();
  auto read = StartRead(0, 3 * kChunk);
  // Each attempt fails at once (UNAVAILABLE); only the back-off takes time.
  ASSERT_TRUE(Scheduled(t0, 40));
  AdvanceTo(t0, 40);
  ASSERT_TRUE(Scheduled(t0, 120));
  AdvanceTo(t0, 119);
  EXPECT_FALSE(read->done());
  AdvanceTo(t0, 120);
  // The last piece failed; the healthy pieces finish in real time.
  ASSERT_TRUE(testutil::Eventually([&] { return read->done(); }));
  EXPECT_EQ(read->result.get().status().code(), proto::UNAVAILABLE);
  // Chunks on healthy servers still read.
  auto first = Read(0, kChunk);
  EXPECT_TRUE(first.ok());
  f.fail_writes = false;
  f.refuse_connect = false;
  EXPECT_TRUE(Read(0, 3 * kChunk).ok());  // and the server is used again once it is back
}

TEST_F(ManualClockClientTest, AnUnreachableMetaIsRetriedWithBackoff) {
  auto& f = transport_.FaultsFor("meta:0");
  f.fail_writes = true;
  f.refuse_connect = true;
  int64_t t0 = clock_.NowMs();
  auto attr = std::async(std::launch::async, [&] { return client_->GetAttr(1); });
  // Back-off doubles from 50 ms: tries at 0, 50, 150, ...
  ASSERT_TRUE(Scheduled(t0, 50));
  AdvanceTo(t0, 50);
  ASSERT_TRUE(Scheduled(t0, 150));
  EXPECT_EQ(attr.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  f.fail_writes = false;
  f.refuse_connect = false;
  AdvanceTo(t0, 150);
  auto got = attr.get();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->ino(), 1u);
}

TEST_F(ManualClockClientTest, AnUnreachableMetaFailsOnceItsTimeoutIsSpent) {
  auto& f = transport_.FaultsFor("meta:0");
  f.fail_writes = true;
  f.refuse_connect = true;
  int64_t t0 = clock_.NowMs();
  auto attr = std::async(std::launch::async, [&] { return client_->GetAttr(1); });
  // Sleeps of 50, 100, ... 800, then 1000 ms while another fits in 10 s:
  // tries at 0, 50, 150, 350, 750, 1550, 2550, ..., 9550; none after.
  for (int64_t at : {50, 150, 350, 750, 1550, 2550, 3550, 4550, 5550, 6550, 7550, 8550, 9550}) {
    ASSERT_TRUE(Scheduled(t0, at)) << at;
    AdvanceTo(t0, at);
  }
  auto got = attr.get();
  EXPECT_EQ(got.status().code(), proto::UNAVAILABLE);
  EXPECT_EQ(clock_.NowMs(), t0 + 9550);
  f.fail_writes = false;
  f.refuse_connect = false;
}

TEST_F(ManualClockClientTest, CachedDirectoriesExpireOnTheClock) {
  ASSERT_TRUE(client_->Mkdir(ProcessCaller(), 1, "d", 0755).ok());
  auto d = client_->Resolve(ProcessCaller(), "/d");  // caches d until t0 + 1000
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(client_->Create(ProcessCaller(), d->ino(), "g", 0644, true).ok());
  auto lookups = [&] { return meta_stats_.requests[proto::META_LOOKUP].load(); };
  ASSERT_TRUE(client_->Resolve(ProcessCaller(), "/d/g").ok());  // d comes from the cache (until t0 + 1000)
  uint64_t before = lookups();
  clock_.Advance(999);
  ASSERT_TRUE(client_->Resolve(ProcessCaller(), "/d/g").ok());
  EXPECT_EQ(lookups(), before + 1) << "only g is looked up while d is cached";
  clock_.Advance(1);
  ASSERT_TRUE(client_->Resolve(ProcessCaller(), "/d/g").ok());
  EXPECT_EQ(lookups(), before + 3) << "d expired: both looked up";
}

// The kernel asks for a directory's attributes again after every change made
// through the mount; the change's own reply answers, for the attribute timeout.
TEST_F(ManualClockClientTest, ADirectoryThisClientChangedIsAnsweredFromTheChangesReply) {
  ClientOptions o = OptionsForThisCluster();
  o.clock = &clock_;
  o.dir_attr_cache_ms = 1000;
  auto mine = Client::Connect(o, &transport_);
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  Client& c = **mine;
  auto getattrs = [&] { return meta_stats_.requests[proto::META_GETATTR].load(); };
  auto same = [&](uint64_t ino) {  // what the client answers is what meta holds
    auto cached = c.GetAttr(ino);
    auto stored = store_->GetAttr(ino);
    return cached.ok() && stored.ok() && cached->SerializeAsString() == stored->SerializeAsString();
  };
  auto d = c.Mkdir(ProcessCaller(), 1, "d", 0755);
  ASSERT_TRUE(d.ok());
  uint64_t before = getattrs();
  EXPECT_TRUE(same(1)) << "the parent of mkdir";
  EXPECT_TRUE(same(d->ino())) << "the new directory";
  ASSERT_TRUE(c.Create(ProcessCaller(), d->ino(), "a", 0644, true).ok());
  EXPECT_TRUE(same(d->ino())) << "after create";
  ASSERT_TRUE(c.Mkdir(ProcessCaller(), d->ino(), "sub", 0755).ok());
  EXPECT_TRUE(same(d->ino())) << "after mkdir: nlink 3";
  ASSERT_TRUE(c.Rename(ProcessCaller(), d->ino(), "a", 1, "a2", false).ok());
  EXPECT_TRUE(same(d->ino()) && same(1)) << "after a rename between the two";
  ASSERT_TRUE(c.Unlink(ProcessCaller(), 1, "a2").ok());
  EXPECT_TRUE(same(1)) << "after unlink";
  EXPECT_EQ(getattrs(), before) << "none of those asked meta";

  // A removed directory is not answered from the cache.
  auto sub = c.Lookup(ProcessCaller(), d->ino(), "sub");
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(c.Rmdir(ProcessCaller(), d->ino(), "sub").ok());
  EXPECT_EQ(c.GetAttr(sub->ino()).status().code(), proto::NOT_FOUND);
  EXPECT_TRUE(same(d->ino())) << "after rmdir: nlink 2";

  // Another client's change shows once the time to live has passed, as a
  // kernel-cached copy would.
  before = getattrs();
  ASSERT_TRUE(client_->Create(ProcessCaller(), d->ino(), "theirs", 0644, true).ok());
  clock_.Advance(1000);
  EXPECT_TRUE(same(d->ino()));
  EXPECT_EQ(getattrs(), before + 1);

  // A mutation that failed leaves the cache out of it.
  ASSERT_TRUE(c.Create(ProcessCaller(), d->ino(), "b", 0644, true).ok());
  EXPECT_FALSE(c.Create(ProcessCaller(), d->ino(), "b", 0644, true).ok());
  before = getattrs();
  EXPECT_TRUE(same(d->ino()));
  EXPECT_EQ(getattrs(), before + 1);
}

// A retry answered from its first attempt's record does not say what that
// attempt changed: the client asks meta again. (Real clock: the retry backs off.)
TEST_F(ClientTest, ADirectoryChangedByARetriedCallIsAskedForAgain) {
  ClientOptions o = OptionsForThisCluster();
  o.dir_attr_cache_ms = 60000;
  auto mine = Client::Connect(o, &transport_);
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  Client& c = **mine;
  auto getattrs = [&] { return meta_stats_.requests[proto::META_GETATTR].load(); };
  auto d = c.Mkdir(ProcessCaller(), 1, "d", 0755);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(c.Create(ProcessCaller(), d->ino(), "c", 0644, true).ok());
  uint64_t before = getattrs();
  ASSERT_TRUE(c.GetAttr(d->ino()).ok());
  EXPECT_EQ(getattrs(), before) << "from the create's reply";
  transport_.FaultsFor("meta:0").lose_reply_of_next_frames = 1;
  ASSERT_TRUE(c.Create(ProcessCaller(), d->ino(), "e", 0644, true).ok());
  EXPECT_EQ(transport_.FaultsFor("meta:0").lose_reply_of_next_frames.load(), 0) << "the fault was not used";
  auto now = c.GetAttr(d->ino());
  auto stored = store_->GetAttr(d->ino());
  ASSERT_TRUE(now.ok() && stored.ok());
  EXPECT_EQ(now->mtime_ns(), stored->mtime_ns());
  EXPECT_EQ(getattrs(), before + 1);
}

TEST_F(ClientTest, AWriteRetriedAfterATimeoutIsNotOvertakenByItsFirstAttempt) {
  std::string a = Data(5000, 11), b = Data(5000, 12);
  ASSERT_TRUE(Write(0, Data(100, 10)).ok());  // connected: the held frame is a request, not the handshake
  auto& f = transport_.FaultsFor(AddressOf(0));
  f.hold_ms = 900;  // the first attempt wanders past the 300 ms deadline...
  f.hold_next_frames = 1;
  ASSERT_TRUE(Write(100, a).ok());  // ...so the retry lands and is acknowledged
  ASSERT_TRUE(Write(100, b).ok());  // then a newer write of the same bytes
  // Now the first attempt of `a` arrives; it must not land over `b`.
  ASSERT_TRUE(testutil::Eventually([&] { return f.held_delivered.load() == 1; }));
  uint64_t superseded = 0;
  ASSERT_TRUE(testutil::Eventually([&] {
    superseded = 0;
    for (auto& n : storage_nodes_) superseded += n->service().superseded_writes();
    return superseded == 1;
  })) << "the late attempt was not refused";
  EXPECT_EQ(*Read(100, b.size()), b);
}

TEST_F(ClientTest, ConcurrentWritesOfOneChunkAllLand) {
  // Writes of one chunk share a lane and leave one at a time; none is refused
  // as stale and each lands whole, however they were issued.
  transport_.FaultsFor(AddressOf(0)).delay_ms = 5;
  constexpr int kWrites = 16;
  constexpr uint32_t kPiece = kChunk / kWrites;
  std::string all = Data(kChunk, 13);
  std::atomic<int> left{kWrites};
  std::vector<Status> results(kWrites);
  for (int i = 0; i < kWrites; ++i)
    client_->WriteAsync(file_, i * kPiece, kPiece, reinterpret_cast<const uint8_t*>(all.data()) + i * kPiece,
                        [&, i](Result<size_t> r) {
                          results[i] = r.status();
                          --left;
                        });
  ASSERT_TRUE(testutil::Eventually([&] { return left.load() == 0; }, std::chrono::seconds(30)));
  for (int i = 0; i < kWrites; ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();
  auto attr = client_->UpdateLength(file_.ino(), kChunk);
  ASSERT_TRUE(attr.ok());
  file_ = *attr;
  EXPECT_EQ(*Read(0, kChunk), all);
}

TEST_F(ClientTest, DamagedWritePayloadIsRejectedAndStoresNothing) {
  std::string a = Data(kChunk, 6);
  ASSERT_TRUE(Write(0, a).ok());
  transport_.FaultsFor(AddressOf(0)).corrupt_next_frames = 1;
  auto n = client_->Write(file_, 0, kChunk, reinterpret_cast<const uint8_t*>(Data(kChunk, 7).data()));
  EXPECT_EQ(n.status().code(), proto::CHECKSUM_MISMATCH);
  EXPECT_EQ(*Read(0, kChunk), a);
}

TEST_F(ClientTest, TruncateCutsChunksOnEveryTarget) {
  std::string a = Data(4 * kChunk, 8);
  ASSERT_TRUE(Write(0, a).ok());
  proto::SetAttrReq r;
  *r.mutable_caller() = ProcessCaller();
  r.set_ino(file_.ino());
  r.set_set_size(true);
  r.set_size(kChunk + 10);
  auto cut = client_->SetAttr(r);
  ASSERT_TRUE(cut.ok());
  r.set_size(4 * kChunk);
  auto grown = client_->SetAttr(r);
  ASSERT_TRUE(grown.ok());
  file_ = *grown;
  auto got = Read(0, 4 * kChunk);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->substr(0, kChunk + 10), a.substr(0, kChunk + 10));
  EXPECT_EQ(got->substr(kChunk + 10), std::string(3 * kChunk - 10, '\0'));
}

TEST_F(ClientTest, ATruncateMetaRefusesCutsNoByteOnStorage) {
  std::string a = Data(4 * kChunk + 99, 12);
  ASSERT_TRUE(Write(0, a).ok());
  Caller stranger;  // not the owner, not in the group: no write permission on a 0644 file
  stranger.set_uid(4321);
  stranger.set_gid(4321);
  proto::SetAttrReq r;
  *r.mutable_caller() = stranger;
  r.set_ino(file_.ino());
  r.set_set_size(true);
  for (uint64_t size : {uint64_t{0}, uint64_t{kChunk + 10}}) {
    r.set_size(size);
    EXPECT_EQ(client_->SetAttr(r).status().code(), proto::PERMISSION_DENIED) << size;
  }
  EXPECT_EQ(client_->GetAttr(file_.ino())->size(), a.size());
  // Every byte is still on storage (a cut chunk would read back as a hole).
  auto got = Read(0, a.size());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == a) << "bytes on storage changed";
}

TEST_F(ClientTest, BatchItemsFailAloneWhenTheirChunkIsDamaged) {
  std::string a = Data(6 * kChunk, 10);
  ASSERT_TRUE(Write(0, a).ok());
  // Chunks 0 and 3 share a chain (stripe 3), so both items travel in one request.
  auto p0 = client_->Place(file_.layout(), 0), p3 = client_->Place(file_.layout(), 3);
  ASSERT_EQ(p0->target_id, p3->target_id);
  ASSERT_TRUE(storage::FlipStoredByte(chunks_[p0->node_id - 1].get(), file_.ino(), 0, 100).ok());
  std::vector<BatchReadItem> items(3);
  std::vector<std::string> bufs(3, std::string(4096, '\0'));
  uint64_t offsets[3] = {0, 3 * kChunk, kChunk};
  for (int i = 0; i < 3; ++i) {
    items[i].ino = file_.ino();
    items[i].offset = offsets[i];
    items[i].length = 4096;
    items[i].buf = reinterpret_cast<uint8_t*>(bufs[i].data());
  }
  ASSERT_TRUE(client_->ReadBatch(items).ok());
  EXPECT_EQ(items[0].status.code(), proto::CHECKSUM_MISMATCH);
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(items[i].status.ok()) << i << ": " << items[i].status.ToString();
    EXPECT_EQ(bufs[i], a.substr(offsets[i], 4096)) << i;
  }
}

TEST_F(ClientTest, ClosingTheClientCompletesEveryOutstandingRead) {
  std::string a = Data(3 * kChunk, 11);
  ASSERT_TRUE(Write(0, a).ok());
  transport_.FaultsFor(AddressOf(0)).drop_next_frames = 100;  // these reads never get an answer
  std::atomic<int> calls{0}, cancelled{0};
  std::vector<std::string> bufs(20, std::string(3 * kChunk, '\0'));
  for (auto& b : bufs)
    client_->ReadAsync(file_, 0, b.size(), reinterpret_cast<uint8_t*>(b.data()), [&](Result<size_t> r) {
      ++calls;
      if (r.status().code() == proto::CANCELLED) ++cancelled;
    });
  client_.reset();  // returns only after every callback ran
  EXPECT_EQ(calls.load(), 20);
  EXPECT_EQ(cancelled.load(), 20);
}

// What keeps a FUSE read on one thread: a read started on one of the
// client's loops goes out on that loop's own connection and completes there,
// whichever server it reads from.
TEST_F(ClientTest, AReadStartedOnALoopCompletesOnThatLoop) {
  std::string a = Data(3 * kChunk, 12);  // one chunk on each server
  ASSERT_TRUE(Write(0, a).ok());
  ClientOptions o = OptionsForThisCluster();
  o.event_loops = 3;
  auto c = Client::Connect(o, &transport_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<loop::EventLoop*> loops = (*c)->Loops();
  ASSERT_EQ(loops.size(), 3u);
  struct Outcome {
    std::string buf;
    std::promise<std::pair<Result<size_t>, bool>> done;  // result, completed on the starting loop
  };
  std::vector<Outcome> outcomes(loops.size() * 4);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    loop::EventLoop* l = loops[i % loops.size()];
    Outcome* out = &outcomes[i];
    out->buf.assign(a.size(), '\0');
    l->Post([&, l, out] {
      (*c)->ReadAsync(file_, 0, out->buf.size(), reinterpret_cast<uint8_t*>(out->buf.data()),
                      [l, out](Result<size_t> r) { out->done.set_value({std::move(r), l->InLoopThread()}); });
    });
  }
  for (auto& out : outcomes) {
    auto [r, on_loop] = out.done.get_future().get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, a.size());
    EXPECT_TRUE(on_loop);
    EXPECT_EQ(out.buf, a);
  }
}

TEST_F(ClientTest, ANewNodeReachesTheClientThroughTheTableVersion) {
  auto before = client_->ClusterTable(false);
  ASSERT_EQ(before->chains_size(), 3);
  chunks_.push_back(storage::NewMemoryChunkStore());
  auto n = testing::StorageNode::Start(&transport_, "storage4:0", kCreds, 401, chunks_.back().get());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  storage_nodes_.push_back(std::move(n).value());
  proto::RegisterReq r;
  r.set_node_id(4);
  r.set_address("storage4:0");
  r.add_targets()->set_target_id(401);
  ASSERT_TRUE(cluster_->Register(r).ok());
  // The next metadata reply carries the new version; placing a chunk on the
  // new chain then refreshes the table instead of failing.
  ASSERT_TRUE(client_->SetLayout(ProcessCaller(), 1, kChunk, 0).ok());  // stripe over every chain
  auto wide = client_->Create(ProcessCaller(), 1, "wide", 0644, true);
  ASSERT_TRUE(wide.ok());
  ASSERT_EQ(wide->layout().chains_size(), 4);
  file_ = *wide;
  std::string a = Data(8 * kChunk, 9);
  ASSERT_TRUE(Write(0, a).ok());
  EXPECT_EQ(*Read(0, a.size()), a);
  EXPECT_GT(chunks_.back()->stats().writes.load(), 0u);
  EXPECT_EQ(client_->ClusterTable(false)->chains_size(), 4);
}

}  // namespace
}  // namespace shoal::client
