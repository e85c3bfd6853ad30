// The transport contract: what bad or slow peers may not do to a server (or a
// client), checked over every transport backend and every server
// implementation. Each case plays one misbehaving peer with raw frames on a
// transport connection and checks the server's counters, never the clock.
//
// Adding a server implementation: it must take (RpcServer::Options,
// Transport*) and offer Register / Start / Stop / Address / counters() like
// RpcServer; add two Setup<...> lines to `Setups` below.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/rpc/client.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "proto/cluster.pb.h"
#include "proto/storage.pb.h"
#include "tests/common/eventually.h"

namespace shoal::rpc {
namespace {

using testutil::Eventually;

Credentials Creds() { return Credentials{"contract-cluster", "0123456789abcdef0123", 2000}; }

struct TcpBackend {
  static constexpr bool kTcp = true;
  Transport* transport() { return TcpTransport(); }
  std::string listen() { return "127.0.0.1:0"; }
};
struct InprocBackend {
  static constexpr bool kTcp = false;
  InprocTransport inproc;
  Transport* transport() { return &inproc; }
  std::string listen() { return "contract-server:0"; }
};

template <typename ServerT, typename BackendT>
struct Setup {
  using Server = ServerT;
  using Backend = BackendT;
};

// The methods the suite serves (the ids are borrowed; the bodies are ours).
constexpr proto::Method kEchoInline = proto::STORAGE_STATS;  // reply payload = request payload, on the reader
constexpr proto::Method kEchoPool = proto::STORAGE_WRITE;    // the same, on the worker pool
constexpr proto::Method kPark = proto::STORAGE_READ;         // held until the test releases it
constexpr proto::Method kParkHeavy = proto::STORAGE_TRUNCATE;  // the same, on the reader, charging kHeavyBytes
constexpr uint64_t kHeavyBytes = 400 << 10;

template <typename S>
class TransportContractTest : public ::testing::Test {
 protected:
  using Server = typename S::Server;

  Transport* T() { return backend_.transport(); }

  // Small limits and timeouts so that every case finishes quickly.
  RpcServer::Options SmallOptions() {
    RpcServer::Options o;
    o.listen = backend_.listen();
    o.creds = Creds();
    o.max_frame_bytes = 4 << 20;
    o.worker_threads = 2;
    o.name = "contract";
    o.handshake_timeout_ms = 2000;
    o.frame_read_timeout_ms = 2000;
    o.send_timeout_ms = 5000;
    return o;
  }

  void StartServer(RpcServer::Options o) {
    server_ = std::make_unique<Server>(o, T());
    auto echo = [](std::shared_ptr<ServerCall> call) {
      iovec v{call->payload(), call->payload_len()};
      call->Reply(proto::Empty(), &v, call->payload_len() ? 1 : 0);
    };
    server_->Register(kEchoInline, RpcServer::Dispatch::kInline, echo);
    server_->Register(kEchoPool, RpcServer::Dispatch::kPool, echo);
    server_->Register(kPark, RpcServer::Dispatch::kPool, [this](std::shared_ptr<ServerCall> call) {
      std::lock_guard<std::mutex> l(park_mu_);
      parked_.push_back(std::move(call));
      ++parked_total_;
    });
    server_->Register(kParkHeavy, RpcServer::Dispatch::kInline, [this](std::shared_ptr<ServerCall> call) {
      call->ChargeInFlightBytes(kHeavyBytes);  // say, the read buffers of a batch
      std::lock_guard<std::mutex> l(park_mu_);
      parked_.push_back(std::move(call));
      ++parked_total_;
    });
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    for (auto& p : peers_) p->Shutdown();
    for (auto& t : threads_) t.join();
    if (server_) server_->Stop();
    {
      std::lock_guard<std::mutex> l(park_mu_);
      parked_.clear();
    }
    server_.reset();
  }

  size_t Parked() {
    std::lock_guard<std::mutex> l(park_mu_);
    return parked_.size();
  }
  size_t ParkedTotal() {
    std::lock_guard<std::mutex> l(park_mu_);
    return parked_total_;
  }
  void AnswerParked() {
    std::vector<std::shared_ptr<ServerCall>> calls;
    {
      std::lock_guard<std::mutex> l(park_mu_);
      calls.swap(parked_);
    }
    for (auto& c : calls) c->Reply(proto::Empty());
  }

  std::unique_ptr<RpcChannel> Channel() {
    return std::make_unique<RpcChannel>(RpcChannel::Options{server_->Address(), Creds()}, T());
  }

  Status Echo(RpcChannel& ch, proto::Method m, const std::string& data, int timeout_ms = 5000) {
    std::string out(data.size(), '\0');
    iovec in{const_cast<char*>(data.data()), data.size()};
    uint32_t n = 0;
    proto::Empty rsp;
    Status st = ch.CallSync(m, proto::Empty(), &rsp, timeout_ms, data.empty() ? nullptr : &in, data.empty() ? 0 : 1,
                            {{out.data(), out.size()}}, &n);
    if (st.ok() && (n != data.size() || out != data)) return Error(proto::INTERNAL, "echo differs");
    return st;
  }

  // A raw peer: connected, optionally past the handshake. The fixture shuts
  // it down at the end (unblocking any thread writing to it).
  Connection* Peer(bool handshake) {
    auto c = T()->Connect(server_->Address(), 2000);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    peers_.push_back(std::move(c).value());
    Connection* p = peers_.back().get();
    if (handshake) {
      EXPECT_TRUE(ClientHandshake(*p, Creds()).ok());
    }
    return p;
  }

  // Pipelines `count` requests without reading a reply, on a thread of its
  // own (it blocks once the server stops reading: that is the point).
  void Pipeline(Connection* peer, proto::Method m, int count, size_t payload_bytes) {
    threads_.emplace_back([peer, m, count, payload_bytes] {
      std::string payload(payload_bytes, 'p');
      iovec v{payload.data(), payload.size()};
      for (int i = 0; i < count; ++i) {
        FrameHeader h;
        h.method = m;
        h.request_id = i + 1;
        if (!SendFrame(*peer, h, std::string(), payload_bytes ? &v : nullptr, payload_bytes ? 1 : 0).ok()) return;
      }
    });
  }

  Status Write(Connection* peer, const void* data, size_t n) {
    iovec v{const_cast<void*>(data), n};
    return peer->WriteV(&v, 1);
  }

  typename S::Backend backend_;  // first: everything else uses its transport
  std::unique_ptr<Server> server_;
  std::vector<std::unique_ptr<Connection>> peers_;
  std::vector<std::thread> threads_;
  std::mutex park_mu_;
  std::vector<std::shared_ptr<ServerCall>> parked_;
  size_t parked_total_ = 0;
};

// Reads (and discards) until the server closes; true when it did, false on a
// read timeout (the server kept the connection).
bool ServerCloses(Connection& c) {
  c.SetTimeouts(10000, 10000);
  char buf[4096];
  for (;;) {
    auto r = c.ReadSome(buf, sizeof(buf));
    if (!r.ok()) return r.status().code() == proto::UNAVAILABLE;
  }
}

using Setups = ::testing::Types<Setup<RpcServer, TcpBackend>, Setup<RpcServer, InprocBackend>>;
TYPED_TEST_SUITE(TransportContractTest, Setups);

TYPED_TEST(TransportContractTest, ConnectionsBeyondTheCapAreRefusedAndCounted) {
  auto o = this->SmallOptions();
  o.max_connections = 2;
  this->StartServer(o);
  auto a = this->Channel(), b = this->Channel();
  ASSERT_TRUE(this->Echo(*a, kEchoInline, "a").ok());
  ASSERT_TRUE(this->Echo(*b, kEchoInline, "b").ok());
  auto c = this->Channel();
  EXPECT_FALSE(this->Echo(*c, kEchoInline, "c").ok());
  EXPECT_GE(this->server_->counters().refused_connections, 1u);
  EXPECT_EQ(this->server_->counters().open_connections, 2u);
  // Those inside the cap are unaffected, and a freed slot is usable again.
  ASSERT_TRUE(this->Echo(*a, kEchoInline, "a2").ok());
  a.reset();
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().open_connections < 2; }));
  auto d = this->Channel();
  EXPECT_TRUE(this->Echo(*d, kEchoInline, "d").ok());
}

TYPED_TEST(TransportContractTest, SlowlorisHandshakeIsDroppedAtTheTotalDeadline) {
  auto o = this->SmallOptions();
  o.handshake_timeout_ms = 300;  // total; each byte below comes well within any per-read timeout
  this->StartServer(o);
  Connection* peer = this->Peer(false);
  ASSERT_NE(peer, nullptr);
  // A genuine HELLO frame, one byte at a time.
  proto::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_cluster_id(Creds().cluster_id);
  hello.set_client_nonce(std::string(32, 'n'));
  FrameHeader h;
  h.method = proto::HANDSHAKE_HELLO;
  std::string body = hello.SerializeAsString();
  h.message_len = static_cast<uint32_t>(body.size());
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  std::string frame(reinterpret_cast<char*>(raw), sizeof(raw));
  frame += body;
  size_t sent = 0;
  while (sent < frame.size() && this->server_->counters().timed_out_connections == 0) {
    if (!this->Write(peer, frame.data() + sent, 1).ok()) break;
    ++sent;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // the peer's pace, not a wait for the server
  }
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().timed_out_connections >= 1; }));
  EXPECT_LT(sent, frame.size()) << "the handshake frame went through before the deadline closed it";
  EXPECT_TRUE(ServerCloses(*peer));
  // Counted when the server's side of the handshake ends, maybe after the peer saw the close.
  EXPECT_TRUE(Eventually([&] { return this->server_->counters().rejected_connections == 1; }));
}

TYPED_TEST(TransportContractTest, HeaderThenSilenceIsDroppedAfterTheFrameReadTimeout) {
  auto o = this->SmallOptions();
  o.frame_read_timeout_ms = 200;
  this->StartServer(o);
  auto good = this->Channel();
  ASSERT_TRUE(this->Echo(*good, kEchoInline, "idle is fine").ok());

  Connection* whole_header = this->Peer(true);
  FrameHeader h;
  h.method = kEchoInline;
  h.request_id = 1;
  h.message_len = 10;
  h.payload_len = 1000;
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  ASSERT_TRUE(this->Write(whole_header, raw, sizeof(raw)).ok());
  EXPECT_TRUE(ServerCloses(*whole_header));

  Connection* half_header = this->Peer(true);
  ASSERT_TRUE(this->Write(half_header, raw, sizeof(raw) / 2).ok());
  EXPECT_TRUE(ServerCloses(*half_header));

  EXPECT_EQ(this->server_->counters().timed_out_connections, 2u);
  // The channel that sat idle between frames the whole time is still served.
  EXPECT_TRUE(this->Echo(*good, kEchoInline, "still here").ok());
  EXPECT_EQ(this->server_->counters().timed_out_connections, 2u);
}

TYPED_TEST(TransportContractTest, RequestsInFlightAreBoundedByBackPressure) {
  auto o = this->SmallOptions();
  o.max_requests_in_flight = 8;
  this->StartServer(o);
  Connection* flood = this->Peer(true);
  this->Pipeline(flood, kPark, 5000, 0);
  ASSERT_TRUE(Eventually([&] { return this->Parked() == 8; }));
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().backpressure_pauses >= 1; }));
  // Another client is served while the flooding one is held back.
  auto other = this->Channel();
  EXPECT_TRUE(this->Echo(*other, kEchoPool, "served meanwhile").ok());
  // Answers make room, so the flood moves on, never past the limit.
  for (int round = 0; round < 3; ++round) {
    size_t before = this->ParkedTotal();
    this->AnswerParked();
    ASSERT_TRUE(Eventually([&] { return this->ParkedTotal() >= before + 8; }));
  }
  EXPECT_EQ(this->server_->counters().peak_requests_in_flight, 8u);
}

TYPED_TEST(TransportContractTest, BytesInFlightAreBoundedByBackPressure) {
  auto o = this->SmallOptions();
  constexpr size_t kPayload = 64 << 10;
  o.max_bytes_in_flight = 4 * kPayload;
  this->StartServer(o);
  Connection* flood = this->Peer(true);
  this->Pipeline(flood, kPark, 1000, kPayload);
  ASSERT_TRUE(Eventually([&] { return this->Parked() == 4; }));
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().backpressure_pauses >= 1; }));
  auto other = this->Channel();
  EXPECT_TRUE(this->Echo(*other, kEchoInline, std::string(kPayload, 'x')).ok());
  size_t before = this->ParkedTotal();
  this->AnswerParked();
  ASSERT_TRUE(Eventually([&] { return this->ParkedTotal() >= before + 4; }));
  // Parked calls hold request bytes; their small replies went out at once.
  EXPECT_LE(this->server_->counters().peak_bytes_in_flight, 4 * kPayload);
}

TYPED_TEST(TransportContractTest, BytesAHandlerHoldsCountAgainstTheLimit) {
  auto o = this->SmallOptions();
  o.max_bytes_in_flight = 1 << 20;
  this->StartServer(o);
  Connection* flood = this->Peer(true);
  this->Pipeline(flood, kParkHeavy, 1000, 0);  // tiny requests, each costing the server 400 KiB
  // 0, 400 KiB and 800 KiB held each leave room; 1200 KiB does not.
  ASSERT_TRUE(Eventually([&] { return this->Parked() == 3; }));
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().backpressure_pauses >= 1; }));
  size_t before = this->ParkedTotal();
  this->AnswerParked();
  ASSERT_TRUE(Eventually([&] { return this->ParkedTotal() >= before + 3; }));
  EXPECT_EQ(this->server_->counters().peak_requests_in_flight, 3u);
  EXPECT_LE(this->server_->counters().peak_bytes_in_flight, 3 * kHeavyBytes);
}

TYPED_TEST(TransportContractTest, ClientThatStopsReadingStallsOnlyItself) {
  auto o = this->SmallOptions();
  o.worker_threads = 1;  // one pool thread serves both clients: it must never block on the stuck one
  o.max_bytes_in_flight = 4 << 20;
  o.send_timeout_ms = 60000;  // the stuck client stays connected throughout
  this->StartServer(o);
  Connection* stuck = this->Peer(true);
  this->Pipeline(stuck, kEchoPool, 2000, 256 << 10);  // ~500 MB of replies it never reads
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().backpressure_pauses >= 1; }));
  auto other = this->Channel();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(this->Echo(*other, kEchoPool, "not stalled " + std::to_string(i)).ok());
  auto c = this->server_->counters();
  EXPECT_EQ(c.timed_out_connections, 0u);
  EXPECT_EQ(c.open_connections, 2u);
  // Echo replies are no larger than their requests, so admitted requests plus
  // their queued replies stay within twice the limit.
  EXPECT_LE(c.peak_bytes_in_flight, 2 * o.max_bytes_in_flight);
}

TYPED_TEST(TransportContractTest, PeerThatDrainsNothingIsDroppedAfterTheSendTimeout) {
  auto o = this->SmallOptions();
  o.max_bytes_in_flight = 2 << 20;
  o.send_timeout_ms = 300;
  this->StartServer(o);
  Connection* stuck = this->Peer(true);
  this->Pipeline(stuck, kEchoInline, 2000, 256 << 10);
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().timed_out_connections >= 1; }));
  ASSERT_TRUE(Eventually([&] { return this->server_->counters().open_connections == 0; }));
  auto other = this->Channel();
  EXPECT_TRUE(this->Echo(*other, kEchoInline, "fine").ok());
}

TYPED_TEST(TransportContractTest, OversizedAndMalformedFramesCloseOnlyThatConnection) {
  auto o = this->SmallOptions();
  o.max_frame_bytes = 1 << 20;
  this->StartServer(o);
  auto good = this->Channel();
  ASSERT_TRUE(this->Echo(*good, kEchoInline, "before").ok());

  Connection* big = this->Peer(true);
  FrameHeader h;
  h.method = kEchoInline;
  h.payload_len = 2 << 20;
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  ASSERT_TRUE(this->Write(big, raw, sizeof(raw)).ok());
  EXPECT_TRUE(ServerCloses(*big));

  Connection* bad_magic = this->Peer(true);
  h.payload_len = 0;
  EncodeFrameHeader(h, raw);
  raw[0] ^= 0xff;
  ASSERT_TRUE(this->Write(bad_magic, raw, sizeof(raw)).ok());
  EXPECT_TRUE(ServerCloses(*bad_magic));

  Connection* response = this->Peer(true);
  h.flags = kFlagResponse;
  ASSERT_TRUE(SendFrame(*response, h, std::string()).ok());
  EXPECT_TRUE(ServerCloses(*response));

  EXPECT_TRUE(this->Echo(*good, kEchoInline, "after").ok());
}

TYPED_TEST(TransportContractTest, EmptyPayloadsAllocateNoBuffer) {
  EXPECT_EQ(AlignedBuffer(0).data(), nullptr);
  AlignedBuffer b;
  EXPECT_FALSE(AlignedBuffer::TryAllocate(SIZE_MAX - 1, &b)) << "a size that overflows the rounding";
  this->StartServer(this->SmallOptions());
  auto ch = this->Channel();
  ASSERT_TRUE(this->Echo(*ch, kEchoInline, "").ok());  // connected
  uint64_t before = AlignedBuffer::allocations();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(this->Echo(*ch, kEchoInline, "").ok());
    ASSERT_TRUE(this->Echo(*ch, kEchoPool, "").ok());
  }
  EXPECT_EQ(AlignedBuffer::allocations(), before);
  ASSERT_TRUE(this->Echo(*ch, kEchoInline, "x").ok());
  EXPECT_EQ(AlignedBuffer::allocations(), before + 1);  // the counter does see a real payload
}

TYPED_TEST(TransportContractTest, ItemsPerRequestLimitIsVisibleToHandlers) {
  auto o = this->SmallOptions();
  o.max_items_per_request = 7;
  std::promise<uint32_t> seen;
  this->server_ = std::make_unique<typename TestFixture::Server>(o, this->T());
  this->server_->Register(kEchoInline, RpcServer::Dispatch::kInline, [&](std::shared_ptr<ServerCall> call) {
    seen.set_value(call->max_items_per_request());
    call->Reply(proto::Empty());
  });
  ASSERT_TRUE(this->server_->Start().ok());
  auto ch = this->Channel();
  ASSERT_TRUE(this->Echo(*ch, kEchoInline, "").ok());
  EXPECT_EQ(seen.get_future().get(), 7u);
}

TYPED_TEST(TransportContractTest, TcpConnectionsCarryKeepaliveAndUserTimeout) {
  if (!TypeParam::Backend::kTcp) GTEST_SKIP() << "a socketpair has no TCP keepalive";
  auto listener = this->T()->Listen("127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  auto client = this->T()->Connect((*listener)->Address(), 2000);
  ASSERT_TRUE(client.ok());
  auto server_end = (*listener)->Accept();
  ASSERT_TRUE(server_end.ok());
  for (Connection* c : {client->get(), server_end->get()}) {
    int fd = c->NativeHandle();
    ASSERT_GE(fd, 0);
    int v = 0;
    socklen_t len = sizeof(v);
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    EXPECT_EQ(v, 1);
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
    EXPECT_EQ(v, kKeepaliveIdleSec);
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &len), 0);
    EXPECT_EQ(v, kKeepaliveIntervalSec);
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &len), 0);
    EXPECT_EQ(v, kKeepaliveProbes);
    unsigned int ut = 0;
    len = sizeof(ut);
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, &len), 0);
    EXPECT_EQ(ut, static_cast<unsigned int>(kTcpUserTimeoutMs));
  }
}

// The client side: a server that starts a response and stalls mid-payload
// fails that call with TIMEOUT at its deadline and loses the connection.
TYPED_TEST(TransportContractTest, ServerStallingMidPayloadTimesTheCallOutAndIsDropped) {
  auto listener = this->T()->Listen(this->backend_.listen());
  ASSERT_TRUE(listener.ok());
  std::promise<bool> dropped;
  std::thread fake([&] {
    auto c = (*listener)->Accept();
    if (!c.ok() || !ServerHandshake(**c, Creds()).ok()) return dropped.set_value(false);
    FrameHeader req;
    std::string msg;
    if (!ReadSmallFrame(**c, 1 << 20, &req, &msg).ok()) return dropped.set_value(false);
    FrameHeader rsp = req;
    rsp.flags = kFlagResponse;
    std::string part(100, 'r');
    rsp.message_len = 0;
    rsp.payload_len = 1000;  // announces 1000 bytes, sends 100, then nothing
    uint8_t raw[kFrameHeaderSize];
    EncodeFrameHeader(rsp, raw);
    iovec v[2] = {{raw, sizeof(raw)}, {part.data(), part.size()}};
    if (!(*c)->WriteV(v, 2).ok()) return dropped.set_value(false);
    (*c)->SetTimeouts(10000, 10000);
    char buf[64];
    auto r = (*c)->ReadSome(buf, sizeof(buf));  // returns when the client hangs up
    dropped.set_value(!r.ok() && r.status().code() == proto::UNAVAILABLE);
  });
  RpcChannel ch(RpcChannel::Options{(*listener)->Address(), Creds()}, this->T());
  std::string sink(1000, '\0');
  proto::Empty rsp;
  Status st = ch.CallSync(kEchoInline, proto::Empty(), &rsp, 300, nullptr, 0, {{sink.data(), sink.size()}});
  EXPECT_EQ(st.code(), proto::TIMEOUT) << st.ToString();
  auto fut = dropped.get_future();
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  fake.join();
  EXPECT_TRUE(fut.get()) << "the client kept the stalled connection";
  (*listener)->Close();
}

// A server that starts a response header and goes silent loses the
// connection after the channel's frame read timeout; the calls on it fail.
TYPED_TEST(TransportContractTest, ServerStallingMidHeaderIsDropped) {
  auto listener = this->T()->Listen(this->backend_.listen());
  ASSERT_TRUE(listener.ok());
  std::promise<bool> dropped;
  std::thread fake([&] {
    auto c = (*listener)->Accept();
    if (!c.ok() || !ServerHandshake(**c, Creds()).ok()) return dropped.set_value(false);
    FrameHeader req;
    std::string msg;
    if (!ReadSmallFrame(**c, 1 << 20, &req, &msg).ok()) return dropped.set_value(false);
    FrameHeader rsp = req;
    rsp.flags = kFlagResponse;
    uint8_t raw[kFrameHeaderSize];
    EncodeFrameHeader(rsp, raw);
    iovec v{raw, sizeof(raw) / 2};
    if (!(*c)->WriteV(&v, 1).ok()) return dropped.set_value(false);
    (*c)->SetTimeouts(10000, 10000);
    char buf[64];
    auto r = (*c)->ReadSome(buf, sizeof(buf));
    dropped.set_value(!r.ok() && r.status().code() == proto::UNAVAILABLE);
  });
  RpcChannel::Options o{(*listener)->Address(), Creds()};
  o.frame_read_timeout_ms = 200;
  RpcChannel ch(o, this->T());
  proto::Empty rsp;
  Status st = ch.CallSync(kEchoInline, proto::Empty(), &rsp, 30000);
  EXPECT_EQ(st.code(), proto::UNAVAILABLE) << st.ToString();
  EXPECT_NE(st.message().find("stalled mid-frame"), std::string::npos) << st.ToString();
  auto fut = dropped.get_future();
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  fake.join();
  EXPECT_TRUE(fut.get()) << "the client kept the stalled connection";
  (*listener)->Close();
}

}  // namespace
}  // namespace shoal::rpc
