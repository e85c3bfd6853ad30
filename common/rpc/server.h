// RpcServer: accepts connections on a transport, runs the handshake, reads
// frames and dispatches each request to the handler registered for its method.
//
// Each connection has one reader thread. A handler registered kInline runs on
// that reader and must not block (it may finish asynchronously, e.g. from an
// io_uring completion); kPool handlers run on a shared worker pool. A handler
// answers exactly once through ServerCall::Reply or ReplyError, from any thread;
// a call dropped without an answer releases its share of the limits below.
//
// Bad input closes only the offending connection, with a logged reason: a
// failed handshake, a bad magic or version, a frame over `max_frame_bytes`
// (checked before allocating), a response frame, or an unparsable message.
//
// Bad or slow peers hurt only their own connection:
//  - at most `max_connections` are open; more are closed at once (logged, counted);
//  - the whole handshake must finish within `handshake_timeout_ms` (a total,
//    not per read: a peer trickling a byte a second is dropped);
//  - once the first byte of a frame arrived, the rest must arrive within
//    `frame_read_timeout_ms`; an idle connection (between frames) may stay
//    (TCP keepalive, see transport.h, finds peers that vanished);
//  - per connection, at most `max_requests_in_flight` requests and
//    `max_bytes_in_flight` bytes (request frames plus queued reply bytes) are
//    in flight from the moment a request is read until its reply is written;
//    at the limit the reader stops reading that connection (back-pressure
//    through the transport, no queue that grows); one frame is always admitted
//    when nothing is in flight;
//  - a reply never blocks the thread that sends it: what the transport does
//    not take at once is copied to the connection's send queue, drained by the
//    connection's own writer thread (started on first need); a queued frame
//    not written within `send_timeout_ms` closes the connection;
//  - failing to start a thread or to allocate a frame buffer closes that
//    connection (or fails Start) with a logged reason; it never aborts.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/aligned_buffer.h"
#include "common/rpc/frame.h"
#include "common/rpc/handshake.h"
#include "common/rpc/transport.h"
#include "common/thread_pool.h"

namespace shoal::rpc {

class ServerConnection;

// The default cap on items in one batched request; clients split batches to
// stay under it (a server may be configured lower, and answers TOO_LARGE).
constexpr uint32_t kDefaultMaxItemsPerRequest = 16384;

// What a server did to protect itself; counts since Start unless noted.
struct ServerCounters {
  uint64_t open_connections = 0;      // now
  uint64_t refused_connections = 0;   // over max_connections
  uint64_t rejected_connections = 0;  // handshake failed or timed out
  uint64_t timed_out_connections = 0; // handshake, frame read or send deadline passed
  uint64_t backpressure_pauses = 0;   // a reader waited for replies to drain
  uint64_t resource_failures = 0;     // a thread or buffer could not be created
  uint64_t peak_requests_in_flight = 0;  // the most any one connection had
  uint64_t peak_bytes_in_flight = 0;     // likewise, bytes
};

class ServerCall {
 public:
  ServerCall(std::shared_ptr<ServerConnection> conn, FrameHeader header, std::string message, AlignedBuffer payload);
  ~ServerCall();  // an unanswered call gives back its share of the connection's limits

  proto::Method method() const { return static_cast<proto::Method>(header_.method); }
  const std::string& message() const { return message_; }
  // The request payload, 4 KiB aligned (usable for O_DIRECT writes); nullptr
  // when the request has none.
  uint8_t* payload() { return payload_.data(); }
  size_t payload_len() const { return header_.payload_len; }
  std::string peer() const;
  // The server's limit on items in one batched request (see
  // RpcServer::Options::max_items_per_request); handlers of batches check it.
  uint32_t max_items_per_request() const;

  // Counts `bytes` the handler holds for this call (e.g. read buffers)
  // against the connection's max_bytes_in_flight until the call is answered,
  // so that per-item costs hold back further requests too. Never blocks; call
  // before answering.
  void ChargeInFlightBytes(uint64_t bytes);

  // Parses the request message. On failure replies PROTOCOL_ERROR, logs, closes
  // the connection and returns false; the handler must then return.
  bool Parse(google::protobuf::Message* msg);

  // The payload is written or copied before Reply returns; the caller may
  // reuse it then. A second answer to the same call is ignored.
  void Reply(const google::protobuf::Message& rsp, const iovec* payload = nullptr, int payload_iovs = 0);
  void ReplyError(const Status& st);

 private:
  void Answer(FrameHeader h, const std::string& msg, const iovec* payload, int n);

  std::shared_ptr<ServerConnection> conn_;
  FrameHeader header_;
  std::string message_;
  AlignedBuffer payload_;
  std::atomic<uint64_t> charged_{0};  // frame bytes plus what the handler charged
  std::atomic<bool> answered_{false};
};

using Handler = std::function<void(std::shared_ptr<ServerCall>)>;

class RpcServer {
 public:
  enum class Dispatch { kInline, kPool };
  struct Options {
    std::string listen = "127.0.0.1:0";
    Credentials creds;
    uint64_t max_frame_bytes = 64ull << 20;
    int worker_threads = 4;
    std::string name = "rpc";  // for log lines
    int max_connections = 4096;
    int handshake_timeout_ms = 5000;     // total for the whole handshake
    int frame_read_timeout_ms = 30000;   // first byte of a frame to its last
    int send_timeout_ms = 30000;         // a queued reply frame to written
    uint32_t max_requests_in_flight = 256;      // per connection
    uint64_t max_bytes_in_flight = 256ull << 20;  // per connection
    uint32_t max_items_per_request = kDefaultMaxItemsPerRequest;  // for batch handlers, see ServerCall
  };

  RpcServer(Options options, Transport* transport);
  ~RpcServer();

  // Register before Start().
  void Register(proto::Method method, Dispatch dispatch, Handler handler);
  Status Start();
  void Stop();  // closes the listener and every connection, waits for readers and writers
  std::string Address() const;

  uint64_t rejected_connections() const { return rejected_connections_.load(); }
  ServerCounters counters() const;

 private:
  friend class ServerConnection;
  friend class ServerCall;
  void AcceptLoop();
  void WatchLoop();
  void Serve(std::shared_ptr<ServerConnection> conn);
  void ServeFrames(const std::shared_ptr<ServerConnection>& sc);

  Options options_;
  Transport* transport_;
  std::unique_ptr<Listener> listener_;
  std::unordered_map<uint32_t, std::pair<Dispatch, Handler>> handlers_;
  std::unique_ptr<ThreadPool> pool_;
  std::thread accept_thread_;
  std::thread watch_thread_;  // enforces the deadlines of every connection
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::shared_ptr<ServerConnection>> conns_;
  int live_readers_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> rejected_connections_{0};
  std::atomic<uint64_t> refused_connections_{0};
  std::atomic<uint64_t> timed_out_connections_{0};
  std::atomic<uint64_t> backpressure_pauses_{0};
  std::atomic<uint64_t> resource_failures_{0};
  std::atomic<uint64_t> peak_requests_{0};
  std::atomic<uint64_t> peak_bytes_{0};
};

}  // namespace shoal::rpc
