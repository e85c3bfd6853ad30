// LoopServer: an RPC server whose connections live on event loops.
//
// An accept thread takes connections from the transport and runs each
// handshake on a thread of its own, bounded by `max_connections` and by a
// total handshake deadline (`handshake_timeout_ms`: a peer trickling a byte
// at a time is dropped when it passes); an authenticated connection is then handed to one
// of the loops (round robin) and lives there: its receives, its handlers and
// its sends all run on that loop's thread and ring. No thread per connection,
// no blocking socket call on a loop.
//
// Requests: a handler runs on the connection's loop thread and must not
// block; it answers exactly once, through LoopCall::Reply or ReplyError, from
// any thread (work that blocks — a durable write — goes to a pool and replies
// from there). Replies a connection has ready leave in one gathered send per
// loop iteration. A reply's payload is sent straight from the caller's buffers:
// `release` runs (on the loop thread) once the kernel has taken the bytes or
// the connection is gone, and only then may they be reused.
//
// Limits, per connection, enforced by back-pressure: at most
// `max_requests_in_flight` requests dispatched and not yet replied (sent), and
// at most `max_bytes_in_flight` bytes of request payload plus queued reply;
// at the limit the server stops reading that connection until replies drain —
// a peer that pipelines without reading its replies stalls only itself. A
// frame must arrive whole within `frame_read_timeout_ms` of its first byte,
// and a send to a peer that takes none of it for `send_timeout_ms` closes the
// connection (a slow reader that keeps taking bytes is not cut off). Bad input (bad magic, a frame over `max_frame_bytes` — checked
// before allocating —, a response sent to a server, an unparsable message)
// closes only that connection, with a logged reason.
//
// Thread-safety: Register before Start; Start/Stop from one thread. Stop
// closes the listener and every connection; the loops must outlive the server
// only until Stop returns (connections hold what they need).
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/loop/event_loop.h"
#include "common/rpc/frame.h"
#include "common/rpc/handshake.h"
#include "common/rpc/transport.h"

namespace shoal::rpc {

class LoopConnection;

class LoopCall {
 public:
  LoopCall(std::shared_ptr<LoopConnection> conn, const FrameHeader& header, std::string message, AlignedBuffer payload);
  ~LoopCall();  // a call dropped without a reply answers INTERNAL, so the peer is not left waiting

  proto::Method method() const { return static_cast<proto::Method>(header_.method); }
  const std::string& message() const { return message_; }
  // The request payload, 4 KiB aligned (usable for O_DIRECT writes).
  uint8_t* payload() { return payload_.data(); }
  size_t payload_len() const { return header_.payload_len; }
  loop::EventLoop* loop() const;
  std::string peer() const;

  // Parses the request message. On failure replies PROTOCOL_ERROR, logs,
  // closes the connection and returns false; the handler must then return.
  bool Parse(google::protobuf::Message* msg);

  // Any thread, once. The payload iovecs are copied; the bytes they point at
  // must stay valid until `release` runs.
  void Reply(const google::protobuf::Message& rsp, const iovec* payload = nullptr, int payload_iovs = 0,
             std::function<void()> release = nullptr);
  // The message already serialised (e.g. packed records).
  void ReplyRaw(std::string message, const iovec* payload, int payload_iovs, std::function<void()> release);
  void ReplyError(const Status& st);

 private:
  std::shared_ptr<LoopConnection> conn_;
  FrameHeader header_;
  std::string message_;
  AlignedBuffer payload_;
  bool replied_ = false;
};

using LoopHandler = std::function<void(std::unique_ptr<LoopCall>)>;

class LoopServer {
 public:
  struct Options {
    std::string listen = "127.0.0.1:0";
    Credentials creds;
    int handshake_timeout_ms = 5000;  // the whole handshake
    uint64_t max_frame_bytes = 64ull << 20;
    std::string name = "rpc";
    int max_connections = 4096;
    uint32_t max_requests_in_flight = 1024;
    uint64_t max_bytes_in_flight = 256ull << 20;
    int frame_read_timeout_ms = 30000;
    int send_timeout_ms = 60000;
  };

  // `loops` must be running and outlive Stop().
  LoopServer(Options options, Transport* transport, std::vector<loop::EventLoop*> loops);
  ~LoopServer();

  void Register(proto::Method method, LoopHandler handler);
  Status Start();
  void Stop();
  std::string Address() const;

  // Counters (any thread).
  uint64_t rejected_connections() const;
  uint64_t open_connections() const;
  // Times a connection stopped reading because it reached a limit.
  uint64_t backpressure_stalls() const;
  // Connections closed for a deadline: handshake, frame read, or send.
  uint64_t timed_out_connections() const;

  struct Shared;  // what connections share with the server (outlives it)

 private:
  void AcceptLoop();
  void Handshake(std::unique_ptr<Connection> conn);

  std::shared_ptr<Shared> shared_;
  Transport* transport_;
  std::vector<loop::EventLoop*> loops_;
  std::unique_ptr<Listener> listener_;
  std::thread accept_thread_;
  std::atomic<size_t> next_loop_{0};
  bool started_ = false, stopped_ = false;
};

}  // namespace shoal::rpc
