// RpcServer: accepts connections on a transport, runs the handshake, reads
// frames and dispatches each request to the handler registered for its method.
//
// Each connection has one reader thread. A handler registered kInline runs on
// that reader and must not block (it may finish asynchronously, e.g. from an
// io_uring completion); kPool handlers run on a shared worker pool. A handler
// answers exactly once through ServerCall::Reply or ReplyError, from any thread.
//
// Bad input closes only the offending connection, with a logged reason: a
// failed handshake, a bad magic or version, a frame over `max_frame_bytes`
// (checked before allocating), a response frame, or an unparsable message.
#pragma once

#include <google/protobuf/message.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "common/aligned_buffer.h"
#include "common/rpc/frame.h"
#include "common/rpc/handshake.h"
#include "common/rpc/transport.h"
#include "common/thread_pool.h"

namespace shoal::rpc {

class ServerConnection;

class ServerCall {
 public:
  ServerCall(std::shared_ptr<ServerConnection> conn, FrameHeader header, std::string message, AlignedBuffer payload);

  proto::Method method() const { return static_cast<proto::Method>(header_.method); }
  const std::string& message() const { return message_; }
  // The request payload, 4 KiB aligned (usable for O_DIRECT writes).
  uint8_t* payload() { return payload_.data(); }
  size_t payload_len() const { return header_.payload_len; }
  std::string peer() const;

  // Parses the request message. On failure replies PROTOCOL_ERROR, logs, closes
  // the connection and returns false; the handler must then return.
  bool Parse(google::protobuf::Message* msg);

  void Reply(const google::protobuf::Message& rsp, const iovec* payload = nullptr, int payload_iovs = 0);
  void ReplyError(const Status& st);

 private:
  std::shared_ptr<ServerConnection> conn_;
  FrameHeader header_;
  std::string message_;
  AlignedBuffer payload_;
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
  };

  RpcServer(Options options, Transport* transport);
  ~RpcServer();

  // Register before Start().
  void Register(proto::Method method, Dispatch dispatch, Handler handler);
  Status Start();
  void Stop();  // closes the listener and every connection, waits for readers
  std::string Address() const;

  uint64_t rejected_connections() const { return rejected_connections_.load(); }

 private:
  friend class ServerConnection;
  void AcceptLoop();
  void Serve(std::shared_ptr<ServerConnection> conn);

  Options options_;
  Transport* transport_;
  std::unique_ptr<Listener> listener_;
  std::unordered_map<uint32_t, std::pair<Dispatch, Handler>> handlers_;
  std::unique_ptr<ThreadPool> pool_;
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::shared_ptr<ServerConnection>> conns_;
  int live_readers_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> rejected_connections_{0};
};

}  // namespace shoal::rpc
