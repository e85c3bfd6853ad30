#include "common/rpc/server.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <new>
#include <system_error>
#include <vector>

#include "common/log.h"
#include "common/rpc/frame_reader.h"

namespace shoal::rpc {

namespace {
constexpr int64_t kNoDeadline = INT64_MAX;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void RaiseTo(std::atomic<uint64_t>& peak, uint64_t v) {
  uint64_t cur = peak.load(std::memory_order_relaxed);
  while (v > cur && !peak.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}
}  // namespace

// One accepted connection: its limits, its send queue and writer, and the
// deadlines the server's watch thread enforces on it.
class ServerConnection {
 public:
  ServerConnection(std::unique_ptr<Connection> conn, RpcServer* server) : conn_(std::move(conn)), server_(server) {}
  ~ServerConnection() { JoinWriter(); }  // a no-op once Serve ended: it joined the writer

  Connection& conn() { return *conn_; }
  RpcServer* server() { return server_; }
  const RpcServer::Options& options() const { return server_->options_; }

  // Sends one frame without blocking on the peer (see RpcServer). `admitted`
  // is the bytes of the request that Admit() counted; the request's share of
  // the limits is given back once this reply is written (or dropped).
  Status Send(const FrameHeader& h, const std::string& msg, const iovec* payload, int n, uint64_t admitted) {
    uint8_t hdr[kFrameHeaderSize];
    FrameHeader fh = h;
    fh.message_len = static_cast<uint32_t>(msg.size());
    uint64_t payload_len = 0;
    for (int i = 0; i < n; ++i) payload_len += payload[i].iov_len;
    fh.payload_len = static_cast<uint32_t>(payload_len);
    EncodeFrameHeader(fh, hdr);
    std::vector<iovec> iov;
    iov.reserve(2 + n);
    iov.push_back({hdr, kFrameHeaderSize});
    iov.push_back({const_cast<char*>(msg.data()), msg.size()});
    for (int i = 0; i < n; ++i) iov.push_back(payload[i]);
    uint64_t total = kFrameHeaderSize + msg.size() + payload_len;

    std::unique_lock<std::mutex> l(mu_);
    if (closed_) {
      ReleaseLocked(admitted);
      return Error(proto::UNAVAILABLE, "connection closed");
    }
    size_t written = 0;
    if (queue_.empty() && !writer_busy_) {
      auto w = conn_->TryWriteV(iov.data(), static_cast<int>(iov.size()));
      if (!w.ok()) {
        ReleaseLocked(admitted);
        CloseLocked();
        return w.status();
      }
      written = *w;
      if (written == total) {
        ReleaseLocked(admitted);
        return Status::OK();
      }
    }
    // The peer is not taking bytes as fast as we answer: the rest waits in
    // this connection's queue, counted against its limits.
    Queued q;
    q.admitted = admitted;
    try {
      q.bytes.reserve(total - written);
      size_t skip = written;
      for (const auto& v : iov) {
        if (skip >= v.iov_len) {
          skip -= v.iov_len;
          continue;
        }
        q.bytes.append(static_cast<const char*>(v.iov_base) + skip, v.iov_len - skip);
        skip = 0;
      }
    } catch (const std::bad_alloc&) {
      server_->resource_failures_++;
      ReleaseLocked(admitted);
      CloseLocked();
      return Error(proto::UNAVAILABLE, "out of memory queueing a reply to " + conn_->PeerName());
    }
    bytes_ += q.bytes.size();
    RaiseTo(server_->peak_bytes_, bytes_);
    queue_.push_back(std::move(q));
    if (!writer_.joinable()) {
      try {
        writer_ = std::thread([this] { WriteLoop(); });
      } catch (const std::system_error& e) {
        server_->resource_failures_++;
        LOG_WARN("{}: closing connection from {}: cannot start its writer thread: {}", options().name,
                 conn_->PeerName(), e.what());
        CloseLocked();
        return Error(proto::UNAVAILABLE, "cannot start a writer thread");
      }
    }
    writer_cv_.notify_one();
    return Status::OK();
  }

  // Blocks until a request frame of `frame_bytes` fits in this connection's
  // limits and admits it; false once the connection is closed.
  bool Admit(uint64_t frame_bytes) {
    const auto& o = options();
    std::unique_lock<std::mutex> l(mu_);
    auto fits = [&] {
      return requests_ < o.max_requests_in_flight && (bytes_ == 0 || bytes_ + frame_bytes <= o.max_bytes_in_flight);
    };
    if (!closed_ && !fits()) server_->backpressure_pauses_++;
    room_cv_.wait(l, [&] { return closed_ || fits(); });
    if (closed_) return false;
    requests_++;
    bytes_ += frame_bytes;
    RaiseTo(server_->peak_requests_, requests_);
    RaiseTo(server_->peak_bytes_, bytes_);
    return true;
  }
  void Charge(uint64_t bytes) {
    std::lock_guard<std::mutex> l(mu_);
    bytes_ += bytes;
    RaiseTo(server_->peak_bytes_, bytes_);
  }
  void Release(uint64_t admitted) {
    std::lock_guard<std::mutex> l(mu_);
    ReleaseLocked(admitted);
  }

  // The read deadline covers the handshake or one frame; the watch thread
  // closes the connection when it passes.
  void SetReadDeadline(int64_t deadline_ms, const char* what) {
    std::lock_guard<std::mutex> l(mu_);
    read_deadline_ms_ = deadline_ms;
    read_what_ = what;
  }
  // Called by the watch thread: closes the connection when a deadline passed.
  void CheckDeadlines(int64_t now_ms) {
    std::string reason;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_) return;
      if (read_deadline_ms_ <= now_ms) {
        reason = std::string(read_what_) + " did not arrive in time";
      } else if (write_deadline_ms_ <= now_ms) {
        reason = "the peer took no reply for " + std::to_string(options().send_timeout_ms) + " ms";
      } else {
        return;
      }
      TimeOutLocked();
    }
    LOG_WARN("{}: closing connection from {}: {}", options().name, conn_->PeerName(), reason);
  }
  bool timed_out() {
    std::lock_guard<std::mutex> l(mu_);
    return timed_out_;
  }

  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    CloseLocked();
  }
  void JoinWriter() {
    std::thread w;
    {
      std::lock_guard<std::mutex> l(mu_);
      w = std::move(writer_);
    }
    if (w.joinable()) w.join();
  }

 private:
  struct Queued {
    std::string bytes;
    uint64_t admitted = 0;
  };

  void ReleaseLocked(uint64_t admitted) {
    requests_--;
    bytes_ -= admitted;
    room_cv_.notify_all();
  }
  // Counted before the close, so whoever sees the connection end sees the count.
  void TimeOutLocked() {
    if (closed_) return;
    timed_out_ = true;
    server_->timed_out_connections_++;
    CloseLocked();
  }
  void CloseLocked() {
    if (closed_) return;
    closed_ = true;
    conn_->Shutdown();
    room_cv_.notify_all();
    writer_cv_.notify_all();
  }

  void WriteLoop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      writer_cv_.wait(l, [this] { return closed_ || !queue_.empty(); });
      if (closed_) break;
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      writer_busy_ = true;
      write_deadline_ms_ = NowMs() + options().send_timeout_ms;
      l.unlock();
      iovec v{q.bytes.data(), q.bytes.size()};
      Status st = conn_->WriteV(&v, 1);
      l.lock();
      writer_busy_ = false;
      write_deadline_ms_ = kNoDeadline;
      bytes_ -= q.bytes.size();
      ReleaseLocked(q.admitted);
      if (!st.ok()) {
        // The socket's send timeout (send_timeout_ms per write) may fire
        // before the watch thread's total deadline does.
        if (st.code() == proto::TIMEOUT && !closed_) {
          TimeOutLocked();
          LOG_WARN("{}: closing connection from {}: the peer took no reply for {} ms", options().name,
                   conn_->PeerName(), options().send_timeout_ms);
        }
        CloseLocked();
        break;
      }
    }
    // Replies still queued die with the connection.
    for (auto& q : queue_) {
      bytes_ -= q.bytes.size();
      ReleaseLocked(q.admitted);
    }
    queue_.clear();
  }

  std::unique_ptr<Connection> conn_;
  RpcServer* server_;
  std::mutex mu_;  // guards everything below
  std::condition_variable room_cv_;    // the reader waits for room in the limits
  std::condition_variable writer_cv_;  // the writer waits for queued frames
  bool closed_ = false;
  bool timed_out_ = false;
  uint64_t requests_ = 0;  // admitted, reply not yet written
  uint64_t bytes_ = 0;     // their request frames plus queued reply bytes
  std::deque<Queued> queue_;
  bool writer_busy_ = false;  // the writer holds a frame taken off the queue
  std::thread writer_;
  int64_t read_deadline_ms_ = kNoDeadline;
  const char* read_what_ = "";
  int64_t write_deadline_ms_ = kNoDeadline;
};

ServerCall::ServerCall(std::shared_ptr<ServerConnection> conn, FrameHeader header, std::string message,
                       AlignedBuffer payload)
    : conn_(std::move(conn)),
      header_(header),
      message_(std::move(message)),
      payload_(std::move(payload)),
      charged_(uint64_t{header.message_len} + header.payload_len) {}

ServerCall::~ServerCall() {
  if (!answered_.load()) conn_->Release(charged_.load());
}

void ServerCall::ChargeInFlightBytes(uint64_t bytes) {
  if (answered_.load()) return;
  charged_ += bytes;
  conn_->Charge(bytes);
}

std::string ServerCall::peer() const { return conn_->conn().PeerName(); }

uint32_t ServerCall::max_items_per_request() const { return conn_->options().max_items_per_request; }

bool ServerCall::Parse(google::protobuf::Message* msg) {
  if (msg->ParseFromString(message_)) return true;
  LOG_WARN("closing connection from {}: unparsable {} request", peer(), proto::Method_Name(method()));
  ReplyError(Error(proto::PROTOCOL_ERROR, "unparsable request message"));
  conn_->Close();
  return false;
}

void ServerCall::Answer(FrameHeader h, const std::string& msg, const iovec* payload, int n) {
  if (answered_.exchange(true)) {
    LOG_WARN("{} call from {} answered twice; the second answer is dropped", proto::Method_Name(method()), peer());
    return;
  }
  (void)conn_->Send(h, msg, payload, n, charged_.load());
}

void ServerCall::Reply(const google::protobuf::Message& rsp, const iovec* payload, int payload_iovs) {
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = proto::OK;
  Answer(h, rsp.SerializeAsString(), payload, payload_iovs);
}

void ServerCall::ReplyError(const Status& st) {
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = st.code();
  proto::ErrorDetail d;
  d.set_message(st.message());
  Answer(h, d.SerializeAsString(), nullptr, 0);
}

RpcServer::RpcServer(Options options, Transport* transport)
    : options_(std::move(options)), transport_(transport) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(proto::Method method, Dispatch dispatch, Handler handler) {
  handlers_[method] = {dispatch, std::move(handler)};
}

Status RpcServer::Start() {
  ASSIGN_OR_RETURN(listener_, transport_->Listen(options_.listen));
  try {
    pool_ = std::make_unique<ThreadPool>(options_.worker_threads);
    watch_thread_ = std::thread([this] { WatchLoop(); });
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  } catch (const std::system_error& e) {
    Stop();
    return Error(proto::UNAVAILABLE, options_.name + ": cannot start server threads: " + e.what());
  }
  LOG_INFO("{} listening on {} ({})", options_.name, listener_->Address(), transport_->Name());
  return Status::OK();
}

std::string RpcServer::Address() const { return listener_ ? listener_->Address() : ""; }

ServerCounters RpcServer::counters() const {
  ServerCounters c;
  {
    std::lock_guard<std::mutex> l(mu_);
    c.open_connections = conns_.size();
  }
  c.refused_connections = refused_connections_.load();
  c.rejected_connections = rejected_connections_.load();
  c.timed_out_connections = timed_out_connections_.load();
  c.backpressure_pauses = backpressure_pauses_.load();
  c.resource_failures = resource_failures_.load();
  c.peak_requests_in_flight = peak_requests_.load();
  c.peak_bytes_in_flight = peak_bytes_.load();
  return c;
}

void RpcServer::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ || !listener_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  listener_->Close();
  if (accept_thread_.joinable()) accept_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  {
    std::unique_lock<std::mutex> l(mu_);
    for (auto& c : conns_) c->Close();
    cv_.wait(l, [this] { return live_readers_ == 0; });
  }
  pool_.reset();  // drains queued handlers; their replies fail on closed connections
}

void RpcServer::AcceptLoop() {
  for (;;) {
    auto conn = listener_->Accept();
    if (!conn.ok()) {
      if (conn.status().code() == proto::CANCELLED) return;
      LOG_WARN("{}: {}", options_.name, conn.status().ToString());
      continue;
    }
    auto sc = std::make_shared<ServerConnection>(std::move(conn).value(), this);
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    if (conns_.size() >= static_cast<size_t>(std::max(options_.max_connections, 0))) {
      // One line per hundred refusals: a flood must not flood the log too.
      uint64_t n = ++refused_connections_;
      if (n % 100 == 1)
        LOG_WARN("{}: refused connection from {}: {} connections open (max_connections); {} refused so far",
                 options_.name, sc->conn().PeerName(), conns_.size(), n);
      sc->Close();
      continue;
    }
    conns_.insert(sc);
    ++live_readers_;
    try {
      std::thread([this, sc] { Serve(sc); }).detach();
    } catch (const std::system_error& e) {
      resource_failures_++;
      LOG_WARN("{}: closing connection from {}: cannot start its reader thread: {}", options_.name,
               sc->conn().PeerName(), e.what());
      sc->Close();
      conns_.erase(sc);
      --live_readers_;
    }
  }
}

void RpcServer::WatchLoop() {
  // Deadlines are checked a few times per shortest timeout: close enough for
  // a limit whose purpose is to free resources, and cheap.
  int shortest = std::min({options_.handshake_timeout_ms, options_.frame_read_timeout_ms, options_.send_timeout_ms});
  auto tick = std::chrono::milliseconds(std::clamp(shortest / 8, 5, 250));
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    cv_.wait_for(l, tick, [this] { return stopping_; });
    if (stopping_) break;
    std::vector<std::shared_ptr<ServerConnection>> conns(conns_.begin(), conns_.end());
    l.unlock();
    int64_t now = NowMs();
    for (auto& c : conns) c->CheckDeadlines(now);
    conns.clear();
    l.lock();
  }
}

void RpcServer::Serve(std::shared_ptr<ServerConnection> sc) {
  Connection& conn = sc->conn();
  // The total handshake deadline is the watch thread's; the per-read socket
  // timeout only shortens a single stalled read.
  Credentials creds = options_.creds;
  creds.timeout_ms = std::max(1, std::min(creds.timeout_ms, options_.handshake_timeout_ms));
  sc->SetReadDeadline(NowMs() + options_.handshake_timeout_ms, "the handshake");
  Status st = ServerHandshake(conn, creds);
  sc->SetReadDeadline(kNoDeadline, "");
  if (!st.ok()) {
    ++rejected_connections_;
    if (!sc->timed_out())
      LOG_WARN("{}: refused connection from {}: {}", options_.name, conn.PeerName(), st.ToString());
  } else {
    conn.SetTimeouts(0, options_.send_timeout_ms);
    try {
      ServeFrames(sc);
    } catch (const std::bad_alloc&) {
      resource_failures_++;
      LOG_WARN("{}: closing connection from {}: out of memory", options_.name, conn.PeerName());
    }
  }
  sc->Close();
  sc->JoinWriter();
  std::lock_guard<std::mutex> l(mu_);
  conns_.erase(sc);
  --live_readers_;
  cv_.notify_all();
}

void RpcServer::ServeFrames(const std::shared_ptr<ServerConnection>& sc) {
  Connection& conn = sc->conn();
  FrameReader in(conn, options_.max_frame_bytes);
  for (;;) {
    FrameHeader h;
    Status st = in.WaitForData();  // idle between frames: no deadline
    if (st.ok()) {
      sc->SetReadDeadline(NowMs() + options_.frame_read_timeout_ms, "a frame header");
      st = in.ReadHeader(&h);
    }
    if (st.ok() && h.is_response()) st = Error(proto::PROTOCOL_ERROR, "response frame sent to a server");
    if (!st.ok()) {
      // A peer that went away is not worth a log line; bad input is.
      if (st.code() != proto::UNAVAILABLE && !sc->timed_out())
        LOG_WARN("{}: closing connection from {}: {}", options_.name, conn.PeerName(), st.ToString());
      return;
    }
    // Back-pressure: the frame stays in the transport until there is room.
    sc->SetReadDeadline(kNoDeadline, "");
    uint64_t frame_bytes = uint64_t{h.message_len} + h.payload_len;
    if (!sc->Admit(frame_bytes)) return;
    sc->SetReadDeadline(NowMs() + options_.frame_read_timeout_ms, "the rest of a frame");
    std::string msg;
    AlignedBuffer payload;
    try {
      msg.resize(h.message_len);
    } catch (const std::bad_alloc&) {
      sc->Release(frame_bytes);
      throw;
    }
    if (!AlignedBuffer::TryAllocate(h.payload_len, &payload)) {
      sc->Release(frame_bytes);
      resource_failures_++;
      LOG_WARN("{}: closing connection from {}: cannot allocate a {}-byte payload", options_.name, conn.PeerName(),
               h.payload_len);
      return;
    }
    iovec iov[2] = {{msg.data(), msg.size()}, {payload.data(), h.payload_len}};
    st = in.ReadV(iov, 2);
    sc->SetReadDeadline(kNoDeadline, "");
    if (!st.ok()) {
      sc->Release(frame_bytes);
      return;
    }
    auto call = std::make_shared<ServerCall>(sc, h, std::move(msg), std::move(payload));
    auto it = handlers_.find(h.method);
    if (it == handlers_.end()) {
      call->ReplyError(Error(proto::NOT_SUPPORTED, "unknown method " + std::to_string(h.method)));
      continue;
    }
    if (it->second.first == Dispatch::kInline) {
      it->second.second(std::move(call));
    } else {
      Handler& handler = it->second.second;
      pool_->Submit([&handler, call] { handler(call); });
    }
  }
}

}  // namespace shoal::rpc
