// The LoopServer (the storage server's RPC layer) against bad and slow peers,
// over TCP and in-process: the same contract as RpcServer's
// (transport_contract_test.cc), checked through its counters, never the clock.
#include "common/rpc/loop_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/aligned_buffer.h"
#include "common/rpc/client.h"
#include "common/rpc/inproc_transport.h"
#include "proto/cluster.pb.h"
#include "tests/common/eventually.h"

namespace shoal::rpc {
namespace {

using testutil::Eventually;

Credentials Creds() { return Credentials{"loop-contract", "0123456789abcdef0123", 2000}; }
constexpr proto::Method kEcho = proto::STORAGE_STATS;

struct Tcp {
  Transport* transport() { return TcpTransport(); }
  std::string listen() { return "127.0.0.1:0"; }
};
struct Inproc {
  InprocTransport inproc;
  Transport* transport() { return &inproc; }
  std::string listen() { return "loop-server:0"; }
};

template <typename Backend>
class LoopServerContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = loop::EventLoop::Start({});
    ASSERT_TRUE(l.ok());
    loop_ = std::move(l).value();
  }
  void TearDown() override {
    for (auto& p : peers_) p->Shutdown();
    if (server_) server_->Stop();
    server_.reset();
    loop_.reset();
  }

  LoopServer::Options Small() {
    LoopServer::Options o;
    o.listen = backend_.listen();
    o.creds = Creds();
    o.max_frame_bytes = 4 << 20;
    o.name = "loop-contract";
    o.handshake_timeout_ms = 300;
    o.frame_read_timeout_ms = 300;
    o.send_timeout_ms = 5000;
    return o;
  }
  void Start(LoopServer::Options o) {
    server_ = std::make_unique<LoopServer>(o, backend_.transport(), std::vector<loop::EventLoop*>{loop_.get()});
    server_->Register(kEcho, [](std::unique_ptr<LoopCall> c) {
      iovec v{c->payload(), c->payload_len()};
      c->Reply(proto::Empty(), &v, c->payload_len() ? 1 : 0);
    });
    ASSERT_TRUE(server_->Start().ok());
  }
  // A connection that passed the handshake, driven by hand.
  Connection* Peer(bool handshake = true) {
    auto c = backend_.transport()->Connect(server_->Address(), 2000);
    EXPECT_TRUE(c.ok());
    if (handshake) {
      EXPECT_TRUE(ClientHandshake(**c, Creds()).ok());
    }
    peers_.push_back(std::move(c).value());
    return peers_.back().get();
  }
  static Status SendRaw(Connection* c, const FrameHeader& h, const std::string& body) {
    uint8_t hdr[kFrameHeaderSize];
    EncodeFrameHeader(h, hdr);
    iovec v[2] = {{hdr, sizeof(hdr)}, {const_cast<char*>(body.data()), body.size()}};
    return c->WriteV(v, body.empty() ? 1 : 2);
  }
  // True when the server closed `c` (a read sees EOF or an error).
  static bool Closed(Connection* c) {
    c->SetTimeouts(5000, 0);
    char b[4096];
    for (;;) {
      auto n = c->ReadSome(b, sizeof(b));
      if (!n.ok()) return n.status().code() != proto::TIMEOUT;
    }
  }
  Status Echo(const std::string& data) {
    RpcChannel ch({server_->Address(), Creds()}, backend_.transport());
    std::string out(data.size(), '\0');
    iovec in{const_cast<char*>(data.data()), data.size()};
    proto::Empty rsp;
    uint32_t n = 0;
    Status st = ch.CallSync(kEcho, proto::Empty(), &rsp, 5000, data.empty() ? nullptr : &in, data.empty() ? 0 : 1,
                            {{out.data(), out.size()}}, &n);
    if (st.ok() && out != data) return Error(proto::INTERNAL, "echo differs");
    return st;
  }

  Backend backend_;
  std::unique_ptr<loop::EventLoop> loop_;
  std::unique_ptr<LoopServer> server_;
  std::vector<std::unique_ptr<Connection>> peers_;
};

using Backends = ::testing::Types<Tcp, Inproc>;
TYPED_TEST_SUITE(LoopServerContractTest, Backends);

TYPED_TEST(LoopServerContractTest, ConnectionsBeyondTheCapAreRefused) {
  auto o = this->Small();
  o.max_connections = 2;
  this->Start(o);
  this->Peer();
  this->Peer();
  ASSERT_TRUE(Eventually([&] { return this->server_->open_connections() == 2; }));
  auto* third = this->Peer(false);
  EXPECT_TRUE(this->Closed(third));
  EXPECT_GE(this->server_->rejected_connections(), 1u);
}

TYPED_TEST(LoopServerContractTest, ATricklingHandshakeIsDroppedAtTheTotalDeadline) {
  this->Start(this->Small());
  Connection* c = this->Peer(false);
  // A byte every 20 ms: no single read waits long, the whole never ends.
  std::string junk(200, 'x');
  for (size_t i = 0; i < junk.size() && this->server_->timed_out_connections() == 0; ++i) {
    iovec v{&junk[i], 1};
    if (!c->WriteV(&v, 1).ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the trickle itself, not a wait for a result
  }
  ASSERT_TRUE(Eventually([&] { return this->server_->timed_out_connections() == 1; }));
  EXPECT_TRUE(this->Closed(c));
  EXPECT_TRUE(this->Echo("still serving").ok());
}

TYPED_TEST(LoopServerContractTest, AFrameThatStopsHalfwayIsDroppedAfterTheFrameReadTimeout) {
  this->Start(this->Small());
  Connection* c = this->Peer();
  FrameHeader h;
  h.method = kEcho;
  h.request_id = 1;
  h.message_len = 0;
  h.payload_len = 1000;
  ASSERT_TRUE(this->SendRaw(c, h, std::string(10, 'p')).ok());  // 990 bytes never come
  ASSERT_TRUE(Eventually([&] { return this->server_->timed_out_connections() == 1; }));
  EXPECT_TRUE(this->Closed(c));
  // An idle connection (no frame begun) is not timed out.
  Connection* idle = this->Peer();
  (void)idle;
  EXPECT_TRUE(this->Echo("x").ok());
  EXPECT_EQ(this->server_->timed_out_connections(), 1u);
}

TYPED_TEST(LoopServerContractTest, APeerThatStopsReadingStallsOnlyItself) {
  auto o = this->Small();
  o.max_bytes_in_flight = 1 << 20;
  this->Start(o);
  Connection* greedy = this->Peer();
  std::string payload(64 << 10, 'g');
  // Pipelined echoes it never reads: its replies fill the socket, then its
  // budget, then the server stops reading it.
  std::thread writer([&] {
    FrameHeader h;
    h.method = kEcho;
    h.payload_len = static_cast<uint32_t>(payload.size());
    for (int i = 0; i < 400; ++i) {
      h.request_id = i + 1;
      if (!this->SendRaw(greedy, h, payload).ok()) break;
    }
  });
  ASSERT_TRUE(Eventually([&] { return this->server_->backpressure_stalls() >= 1; }));
  EXPECT_TRUE(this->Echo(std::string(1 << 20, 'o')).ok());  // another client, served meanwhile
  greedy->Shutdown();
  writer.join();
}

TYPED_TEST(LoopServerContractTest, APeerThatTakesNoRepliesIsDroppedAfterTheSendTimeout) {
  auto o = this->Small();
  o.send_timeout_ms = 300;
  this->Start(o);
  Connection* greedy = this->Peer();
  std::string payload(256 << 10, 'g');
  std::thread writer([&] {
    FrameHeader h;
    h.method = kEcho;
    h.payload_len = static_cast<uint32_t>(payload.size());
    for (int i = 0; i < 200; ++i) {
      h.request_id = i + 1;
      if (!this->SendRaw(greedy, h, payload).ok()) break;
    }
  });
  ASSERT_TRUE(Eventually([&] { return this->server_->timed_out_connections() >= 1; }));
  ASSERT_TRUE(Eventually([&] { return this->server_->open_connections() == 0; }));
  writer.join();
}

TYPED_TEST(LoopServerContractTest, MalformedAndOversizedFramesCloseOnlyThatConnection) {
  this->Start(this->Small());
  Connection* bad_magic = this->Peer();
  std::string garbage(64, 'z');
  iovec v{garbage.data(), garbage.size()};
  ASSERT_TRUE(bad_magic->WriteV(&v, 1).ok());
  EXPECT_TRUE(this->Closed(bad_magic));

  Connection* huge = this->Peer();
  FrameHeader h;
  h.method = kEcho;
  h.payload_len = 64 << 20;  // over max_frame_bytes: refused before anything is allocated
  uint64_t before = AlignedBuffer::allocations();
  ASSERT_TRUE(this->SendRaw(huge, h, "").ok());
  EXPECT_TRUE(this->Closed(huge));
  EXPECT_EQ(AlignedBuffer::allocations(), before);

  Connection* response = this->Peer();
  FrameHeader r;
  r.method = kEcho;
  r.flags = kFlagResponse;
  ASSERT_TRUE(this->SendRaw(response, r, "").ok());
  EXPECT_TRUE(this->Closed(response));

  EXPECT_TRUE(this->Echo("others are fine").ok());
}

TYPED_TEST(LoopServerContractTest, EmptyPayloadsAllocateNoBuffer) {
  this->Start(this->Small());
  ASSERT_TRUE(this->Echo("").ok());  // connection set up
  uint64_t before = AlignedBuffer::allocations();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(this->Echo("").ok());
  EXPECT_EQ(AlignedBuffer::allocations(), before);
}

}  // namespace
}  // namespace shoal::rpc
