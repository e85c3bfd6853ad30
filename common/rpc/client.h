// RpcChannel: a client's connection to one server, with many requests in
// flight. Thread-safe.
//
// The channel connects (and runs the handshake) lazily on the first call and
// again after the connection breaks. Each call has a deadline on the channel's
// Clock; when it passes the call completes with TIMEOUT (at that moment: a
// reaper thread sleeps until the earliest deadline) and a late response is
// discarded. The connect and handshake timeouts are socket timeouts, in real
// time.
//
// Bulk data: a response's payload is read straight from the socket into the
// caller's `sink` buffers, after the request id was found in the table of
// outstanding calls (one copy, no staging buffer). The sink must stay valid
// until the callback runs; once the callback ran, nothing writes into it.
// Likewise the request payload: once the callback ran, nothing reads it (a call
// that times out while its send is still running gets its callback when the
// send returns).
//
// Sending a request blocks (while the server applies back-pressure) for at
// most the call's timeout; then the connection is dropped and its calls fail.
// A server that stalls inside a frame cannot hold the channel: once the first
// byte of a response arrived, its header and message must follow within
// `frame_read_timeout_ms`, and a payload bound for a caller's sink must be in
// by that call's deadline; otherwise the call fails with TIMEOUT and the
// connection is dropped (the other calls on it fail with UNAVAILABLE, and the
// next call reconnects). Failing to start
// a thread or to allocate a response buffer fails the call, never the process.
//
// Callbacks run on the channel's reader thread (or the caller's thread for an
// immediate failure, or a call that ended during its own send) and must not
// block.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/rpc/frame.h"
#include "common/rpc/handshake.h"
#include "common/rpc/transport.h"

namespace shoal::rpc {

// status, the response message bytes (when OK), payload bytes written to the sink.
using Callback = std::function<void(Status status, const std::string& message, uint32_t payload_len)>;

class RpcChannel {
 public:
  struct Options {
    std::string address;
    Credentials creds;
    uint64_t max_frame_bytes = 64ull << 20;
    int connect_timeout_ms = 2000;
    int frame_read_timeout_ms = 30000;  // on `clock`, see above
    const Clock* clock = RealClock();  // call deadlines
  };

  RpcChannel(Options options, Transport* transport);
  ~RpcChannel();  // fails outstanding calls with CANCELLED and waits for the reader

  void Call(proto::Method method, const google::protobuf::Message& request, const iovec* request_payload,
            int request_iovs, std::vector<iovec> sink, int timeout_ms, Callback done);

  // Blocking convenience for control-path calls.
  Status CallSync(proto::Method method, const google::protobuf::Message& request,
                  google::protobuf::Message* response, int timeout_ms, const iovec* request_payload = nullptr,
                  int request_iovs = 0, std::vector<iovec> sink = {}, uint32_t* payload_len = nullptr);

  const std::string& address() const { return options_.address; }

 private:
  struct Conn;
  struct SendGate;
  Result<std::shared_ptr<Conn>> GetConn();
  void ReadLoop(std::shared_ptr<Conn> conn);
  Status ReadFrames(Conn& conn);  // until the connection breaks; returns why
  void ReapLoop();
  // Fails the current connection's calls whose deadline passed; returns the
  // earliest deadline still pending (Clock::kNever when none).
  int64_t ExpireCalls();
  // Sets the deadline of the frame `conn`'s reader is in (Clock::kNever: idle).
  void SetReadDeadline(Conn& conn, int64_t deadline_ms);
  Status StartReaper();

  Options options_;
  Transport* transport_;
  std::mutex connect_mu_;
  std::shared_ptr<Conn> conn_;  // guarded by connect_mu_
  std::atomic<uint64_t> next_id_{1};

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  int live_readers_ = 0;
  bool stopping_ = false;
  int64_t next_reap_ms_ = Clock::kNever;  // when the reaper wakes; a call with an earlier deadline lowers it
  std::thread reaper_;  // started with the first connection
};

}  // namespace shoal::rpc
