#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/rpc/client.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "proto/storage.pb.h"
#include "tests/common/eventually.h"

namespace shoal::rpc {
namespace {

Credentials Creds(std::string key = "0123456789abcdef0123") { return Credentials{"test-cluster", key, 2000}; }

// The transport seam's contract: the same RPC behaviour over every backend.
struct TcpBackend {
  Transport* transport() { return TcpTransport(); }
  std::string listen() { return "127.0.0.1:0"; }
};
struct InprocBackend {
  InprocTransport inproc;
  Transport* transport() { return &inproc; }
  std::string listen() { return "server:0"; }
};

template <typename B>
class RpcTest : public ::testing::Test {
 protected:
  Transport* T() { return backend_.transport(); }

  void SetUp() override {
    RpcServer::Options o;
    o.listen = backend_.listen();
    o.creds = Creds();
    o.max_frame_bytes = 8 << 20;
    server_ = std::make_unique<RpcServer>(o, T());
    // Echo: the reply's payload is the request payload.
    server_->Register(proto::STORAGE_STATS, RpcServer::Dispatch::kInline, [](std::shared_ptr<ServerCall> call) {
      proto::Empty req;
      if (!call->Parse(&req)) return;
      iovec v{call->payload(), call->payload_len()};
      call->Reply(proto::Empty(), &v, 1);
    });
    // Parks the call until the test answers it.
    server_->Register(proto::STORAGE_READ, RpcServer::Dispatch::kPool, [this](std::shared_ptr<ServerCall> call) {
      parked_.set_value(call);
    });
    server_->Register(proto::STORAGE_REMOVE, RpcServer::Dispatch::kPool, [](std::shared_ptr<ServerCall> call) {
      call->ReplyError(Error(proto::NOT_FOUND, "no such chunk"));
    });
    ASSERT_TRUE(server_->Start().ok());
  }

  std::unique_ptr<RpcChannel> Channel(Credentials c = Creds()) {
    return std::make_unique<RpcChannel>(RpcChannel::Options{server_->Address(), c}, T());
  }

  Status Echo(RpcChannel& ch, const std::string& data, std::string* out) {
    out->assign(data.size(), '\0');
    iovec in{const_cast<char*>(data.data()), data.size()};
    uint32_t n = 0;
    proto::Empty rsp;
    Status st = ch.CallSync(proto::STORAGE_STATS, proto::Empty(), &rsp, 2000, &in, 1, {{out->data(), out->size()}}, &n);
    if (st.ok() && n != data.size()) return Error(proto::INTERNAL, "short payload");
    return st;
  }

  B backend_;  // declared first: the server and channels use its transport
  std::unique_ptr<RpcServer> server_;
  std::promise<std::shared_ptr<ServerCall>> parked_;
};

using Backends = ::testing::Types<TcpBackend, InprocBackend>;
TYPED_TEST_SUITE(RpcTest, Backends);

TYPED_TEST(RpcTest, ManyCallsInFlightReceivePayloadIntoTheirOwnBuffers) {
  auto ch = this->Channel();
  constexpr int kCalls = 300;
  std::vector<std::string> sent(kCalls), got(kCalls);
  std::mt19937 rng(7);
  std::atomic<int> done{0}, ok{0};
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    sent[i].resize(rng() % 70000);
    for (auto& c : sent[i]) c = static_cast<char>(rng());
    got[i].assign(sent[i].size(), '\0');
    iovec in{sent[i].data(), sent[i].size()};
    ch->Call(proto::STORAGE_STATS, proto::Empty(), &in, 1, {{got[i].data(), got[i].size()}}, 5000,
             [&, i](Status st, const std::string&, uint32_t n) {
               if (st.ok() && n == sent[i].size()) ++ok;
               if (++done == kCalls) all.set_value();
             });
  }
  ASSERT_EQ(all.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(ok.load(), kCalls);
  for (int i = 0; i < kCalls; ++i) ASSERT_EQ(sent[i], got[i]) << i;
}

TYPED_TEST(RpcTest, ErrorStatusCrossesTheWire) {
  auto ch = this->Channel();
  proto::Empty rsp;
  Status st = ch->CallSync(proto::STORAGE_REMOVE, proto::RemoveReq(), &rsp, 2000);
  EXPECT_EQ(st.code(), proto::NOT_FOUND);
  EXPECT_EQ(st.message(), "no such chunk");
  st = ch->CallSync(proto::META_LOOKUP, proto::Empty(), &rsp, 2000);
  EXPECT_EQ(st.code(), proto::NOT_SUPPORTED);
}

TYPED_TEST(RpcTest, WrongKeyOrClusterIsRefused) {
  auto bad = this->Channel(Creds("another-key-of-enough-length"));
  std::string out;
  EXPECT_EQ(this->Echo(*bad, "x", &out).code(), proto::AUTH_FAILED);
  Credentials other = Creds();
  other.cluster_id = "other";
  auto bad2 = this->Channel(other);
  EXPECT_EQ(this->Echo(*bad2, "x", &out).code(), proto::AUTH_FAILED);
  // The server counts a refusal when its side of the handshake ends, which
  // may be just after the client gave up.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (this->server_->rejected_connections() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_GE(this->server_->rejected_connections(), 2u);
  auto good = this->Channel();
  ASSERT_TRUE(this->Echo(*good, "still serving", &out).ok());
  EXPECT_EQ(out, "still serving");
}

// Reads until EOF or error; true when the server closed the connection.
bool ServerCloses(Connection& c) {
  c.SetTimeouts(5000, 5000);
  char buf[4096];
  for (;;) {
    Status st = c.ReadFull(buf, 1);
    if (!st.ok()) return st.code() == proto::UNAVAILABLE;
  }
}

TYPED_TEST(RpcTest, GarbageAndOversizedFramesCloseOnlyThatConnection) {
  auto good = this->Channel();
  std::string out;
  ASSERT_TRUE(this->Echo(*good, "before", &out).ok());

  auto garbage = this->T()->Connect(this->server_->Address(), 1000);
  ASSERT_TRUE(garbage.ok());
  std::string junk(4096, '\0');
  std::mt19937 rng(1);
  for (auto& c : junk) c = static_cast<char>(rng());
  iovec v{junk.data(), junk.size()};
  (void)(*garbage)->WriteV(&v, 1);
  EXPECT_TRUE(ServerCloses(**garbage));

  // An authenticated peer that announces a frame over the limit.
  auto big = this->T()->Connect(this->server_->Address(), 1000);
  ASSERT_TRUE(big.ok());
  ASSERT_TRUE(ClientHandshake(**big, Creds()).ok());
  FrameHeader h;
  h.method = proto::STORAGE_STATS;
  h.payload_len = 1u << 30;
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  iovec hv{raw, sizeof(raw)};
  ASSERT_TRUE((*big)->WriteV(&hv, 1).ok());
  EXPECT_TRUE(ServerCloses(**big));

  // An authenticated peer that sends an unparsable message.
  auto bad = this->T()->Connect(this->server_->Address(), 1000);
  ASSERT_TRUE(bad.ok());
  ASSERT_TRUE(ClientHandshake(**bad, Creds()).ok());
  h.payload_len = 0;
  ASSERT_TRUE(SendFrame(**bad, h, std::string("\xff\xff\xff", 3)).ok());
  EXPECT_TRUE(ServerCloses(**bad));

  ASSERT_TRUE(this->Echo(*good, "after", &out).ok());
  EXPECT_EQ(out, "after");
}

TYPED_TEST(RpcTest, DeadlineFiresExactlyWhenTheClockPassesItAndTheLateReplyIsDiscarded) {
  ManualClock clock;
  RpcChannel::Options o{this->server_->Address(), Creds()};
  o.clock = &clock;
  auto ch = std::make_unique<RpcChannel>(o, this->T());
  std::string out;
  ASSERT_TRUE(this->Echo(*ch, "connected", &out).ok());
  std::string sink(16, 'z');
  std::promise<Status> result;
  auto fut = result.get_future();
  int64_t start = clock.NowMs();
  ch->Call(proto::STORAGE_READ, proto::ReadReq(), nullptr, 0, {{sink.data(), sink.size()}}, 200,
           [&](Status st, const std::string&, uint32_t) { result.set_value(st); });
  auto call = this->parked_.get_future().get();  // the server holds it and never answers in time
  ASSERT_TRUE(testutil::Eventually([&] { return clock.HasWaitUntil(start + 200); }));
  clock.Advance(199);
  ASSERT_TRUE(clock.Settle());
  EXPECT_EQ(fut.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "timed out before its deadline";
  clock.Advance(1);
  ASSERT_TRUE(clock.Settle());
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(0)), std::future_status::ready) << "not timed out at its deadline";
  EXPECT_EQ(fut.get().code(), proto::TIMEOUT);
  std::string late(16, 'L');
  iovec v{late.data(), late.size()};
  call->Reply(proto::Empty(), &v, 1);
  ASSERT_TRUE(this->Echo(*ch, "next", &out).ok());  // the late frame was drained, the stream is in sync
  EXPECT_EQ(out, "next");
  EXPECT_EQ(sink, std::string(16, 'z'));  // and it never touched the expired sink
}

TYPED_TEST(RpcTest, ReconnectsAfterServerRestart) {
  auto ch = this->Channel();
  std::string out;
  ASSERT_TRUE(this->Echo(*ch, "one", &out).ok());
  std::string addr = this->server_->Address();
  this->server_.reset();
  EXPECT_FALSE(this->Echo(*ch, "down", &out).ok());
  RpcServer::Options o;
  o.listen = addr;
  o.creds = Creds();
  this->server_ = std::make_unique<RpcServer>(o, this->T());
  this->server_->Register(proto::STORAGE_STATS, RpcServer::Dispatch::kInline, [](std::shared_ptr<ServerCall> call) {
    iovec v{call->payload(), call->payload_len()};
    call->Reply(proto::Empty(), &v, 1);
  });
  ASSERT_TRUE(this->server_->Start().ok());
  ASSERT_TRUE(this->Echo(*ch, "two", &out).ok());
  EXPECT_EQ(out, "two");
}

}  // namespace
}  // namespace shoal::rpc
