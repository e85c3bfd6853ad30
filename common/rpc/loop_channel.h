// LoopChannel: a client's connection to one server, owned by one event loop.
//
// The loop does everything: it sends the calls queued in an iteration in one
// gathered send, receives responses into a buffer, and receives each
// response's payload straight into its call's `sink` (after finding the call
// in the table of outstanding ones: a slab indexed by request id). No reader
// or reaper thread per channel: deadlines are timers on the loop.
//
// Connecting (TCP connect + handshake) blocks, so it runs on a short-lived
// thread of its own; calls made meanwhile wait in the channel (at most
// `max_calls`; more fail with UNAVAILABLE). A broken connection fails the
// calls on it with UNAVAILABLE; the next call connects again.
//
// Calls may be made from any thread (Call posts to the loop) or on the loop
// (CallOnLoop, no hop). Callbacks run on the loop thread and must not block.
// A call's request payload and sink must stay valid until its callback ran;
// once it ran, nothing reads or writes them (a call whose deadline passes
// while its bytes are being sent or received completes when that I/O ends).
//
// Destruction (not on the loop thread) fails outstanding calls with
// CANCELLED, their callbacks having run when the destructor returns.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "common/loop/event_loop.h"
#include "common/rpc/client.h"
#include "common/rpc/handshake.h"
#include "common/rpc/transport.h"

namespace shoal::rpc {

class LoopChannel {
 public:
  struct Options {
    std::string address;
    Credentials creds;
    uint64_t max_frame_bytes = 64ull << 20;
    int connect_timeout_ms = 2000;
    uint32_t max_calls = 65536;  // outstanding calls (queued or in flight)
  };

  LoopChannel(Options options, Transport* transport, loop::EventLoop* loop);
  ~LoopChannel();

  void Call(proto::Method method, const google::protobuf::Message& request, const iovec* request_payload,
            int request_iovs, std::vector<iovec> sink, int timeout_ms, Callback done);
  // On the loop thread only: the message already serialised.
  void CallOnLoop(proto::Method method, std::string message, std::vector<iovec> payload, std::vector<iovec> sink,
                  int timeout_ms, Callback done);

  const std::string& address() const;
  loop::EventLoop* loop() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace shoal::rpc
