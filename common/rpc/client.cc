#include "common/rpc/client.h"

#include <algorithm>
#include <future>
#include <new>
#include <system_error>
#include <unordered_map>

#include "common/log.h"
#include "common/rpc/frame_reader.h"

namespace shoal::rpc {

struct RpcChannel::Conn {
  std::unique_ptr<Connection> conn;
  std::mutex send_mu;
  int send_timeout_ms = 0;  // guarded by send_mu; the socket's current send timeout
  struct Pending {
    Callback done;
    std::vector<iovec> sink;
    int64_t deadline_ms;
  };
  std::mutex mu;
  std::unordered_map<uint64_t, Pending> pending;  // guarded by mu
  bool dead = false;                              // guarded by mu
  int64_t read_deadline_ms = Clock::kNever;       // guarded by mu; the frame being read must be in by then
  std::atomic<bool> read_timed_out{false};        // the reaper shut the connection for a stalled frame


  bool Take(uint64_t id, Pending* out) {
    std::lock_guard<std::mutex> l(mu);
    auto it = pending.find(id);
    if (it == pending.end()) return false;
    *out = std::move(it->second);
    pending.erase(it);
    return true;
  }
  void FailAll(const Status& st) {
    std::unordered_map<uint64_t, Pending> failed;
    {
      std::lock_guard<std::mutex> l(mu);
      dead = true;
      failed.swap(pending);
    }
    conn->Shutdown();
    for (auto& [id, p] : failed) p.done(st, std::string(), 0);
  }
};

RpcChannel::RpcChannel(Options options, Transport* transport)
    : options_(std::move(options)), transport_(transport) {}

RpcChannel::~RpcChannel() {
  std::shared_ptr<Conn> conn;
  {
    std::lock_guard<std::mutex> l(connect_mu_);
    conn = std::move(conn_);
  }
  if (conn) conn->FailAll(Error(proto::CANCELLED, "channel closed"));
  std::unique_lock<std::mutex> l(mu_);
  stopping_ = true;
  cv_.notify_all();
  cv_.wait(l, [this] { return live_readers_ == 0; });
  l.unlock();
  if (reaper_.joinable()) reaper_.join();
}

Status RpcChannel::StartReaper() {
  std::lock_guard<std::mutex> l(mu_);
  if (reaper_.joinable()) return Status::OK();
  if (stopping_) return Error(proto::CANCELLED, "channel closed");
  try {
    reaper_ = std::thread([this] { ReapLoop(); });
  } catch (const std::system_error& e) {
    return Error(proto::UNAVAILABLE, std::string("cannot start the channel's reaper thread: ") + e.what());
  }
  return Status::OK();
}

void RpcChannel::SetReadDeadline(Conn& conn, int64_t deadline_ms) {
  {
    std::lock_guard<std::mutex> l(conn.mu);
    conn.read_deadline_ms = deadline_ms;
  }
  if (deadline_ms == Clock::kNever) return;
  std::lock_guard<std::mutex> l(mu_);
  if (deadline_ms < next_reap_ms_) {
    next_reap_ms_ = deadline_ms;
    cv_.notify_all();
  }
}

Result<std::shared_ptr<RpcChannel::Conn>> RpcChannel::GetConn() {
  std::lock_guard<std::mutex> l(connect_mu_);
  if (conn_) {
    std::lock_guard<std::mutex> cl(conn_->mu);
    if (!conn_->dead) return conn_;
  }
  RETURN_IF_ERROR(StartReaper());
  ASSIGN_OR_RETURN(auto raw, transport_->Connect(options_.address, options_.connect_timeout_ms));
  Credentials creds = options_.creds;
  creds.timeout_ms = std::max(creds.timeout_ms, 1);
  Status st = ClientHandshake(*raw, creds);
  if (!st.ok()) {
    raw->Shutdown();
    return Error(st.code(), "handshake with " + options_.address + ": " + st.message());
  }
  auto conn = std::make_shared<Conn>();
  conn->conn = std::move(raw);
  {
    std::lock_guard<std::mutex> ml(mu_);
    if (stopping_) return Error(proto::CANCELLED, "channel closed");
    ++live_readers_;
  }
  try {
    std::thread([this, conn] { ReadLoop(conn); }).detach();
  } catch (const std::system_error& e) {
    conn->conn->Shutdown();
    std::lock_guard<std::mutex> ml(mu_);
    --live_readers_;
    cv_.notify_all();
    return Error(proto::UNAVAILABLE, "connection to " + options_.address + ": cannot start its reader thread: " +
                                         e.what());
  }
  conn_ = conn;
  return conn;
}

struct RpcChannel::SendGate {
  std::mutex mu;
  bool sent = false;
  std::function<void()> held;  // the callback, when the call ended before its send returned
};

void RpcChannel::Call(proto::Method method, const google::protobuf::Message& request, const iovec* request_payload,
                      int request_iovs, std::vector<iovec> sink, int timeout_ms, Callback done) {
  auto conn_or = GetConn();
  if (!conn_or.ok()) {
    done(conn_or.status(), std::string(), 0);
    return;
  }
  auto conn = std::move(conn_or).value();
  // The caller may reuse its payload buffers as soon as `done` runs, so with a
  // payload `done` never runs while the send is still reading them (a timeout
  // or a dead connection can end the call mid-send): it is held back until the
  // send returns.
  std::shared_ptr<SendGate> gate;
  if (request_payload && request_iovs > 0) {
    gate = std::make_shared<SendGate>();
    done = [gate, inner = std::move(done)](Status st, const std::string& msg, uint32_t plen) mutable {
      {
        std::lock_guard<std::mutex> l(gate->mu);
        if (!gate->sent) {
          gate->held = [inner = std::move(inner), st = std::move(st), msg, plen]() mutable { inner(st, msg, plen); };
          return;
        }
      }
      inner(st, msg, plen);
    };
  }
  FrameHeader h;
  h.method = method;
  h.request_id = next_id_.fetch_add(1);
  std::string msg = request.SerializeAsString();
  int64_t deadline_ms = options_.clock->NowMs() + timeout_ms;
  {
    std::lock_guard<std::mutex> l(conn->mu);
    if (conn->dead) {
      done(Error(proto::UNAVAILABLE, "connection to " + options_.address + " lost"), std::string(), 0);
      return;
    }
    conn->pending.emplace(h.request_id, Conn::Pending{std::move(done), std::move(sink), deadline_ms});
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (deadline_ms < next_reap_ms_) {
      next_reap_ms_ = deadline_ms;
      cv_.notify_all();
    }
  }
  Status st;
  {
    std::lock_guard<std::mutex> l(conn->send_mu);
    // A server applying back-pressure may take a while to read a request; the
    // send may block as long as the call may last, no longer.
    int send_ms = std::max(timeout_ms, 1);
    if (send_ms != conn->send_timeout_ms) {
      conn->conn->SetTimeouts(0, send_ms);
      conn->send_timeout_ms = send_ms;
    }
    st = SendFrame(*conn->conn, h, msg, request_payload, request_iovs);
  }
  // The reader fails every outstanding call, this one included, once the
  // connection is shut down, so the callback still runs exactly once.
  if (!st.ok()) conn->conn->Shutdown();
  if (gate) {
    std::function<void()> held;
    {
      std::lock_guard<std::mutex> l(gate->mu);
      gate->sent = true;
      held = std::move(gate->held);
    }
    if (held) held();
  }
}

Status RpcChannel::CallSync(proto::Method method, const google::protobuf::Message& request,
                            google::protobuf::Message* response, int timeout_ms, const iovec* request_payload,
                            int request_iovs, std::vector<iovec> sink, uint32_t* payload_len) {
  std::promise<Status> promise;
  auto fut = promise.get_future();
  Call(method, request, request_payload, request_iovs, std::move(sink), timeout_ms,
       [&](Status st, const std::string& msg, uint32_t plen) {
         if (st.ok() && response && !response->ParseFromString(msg))
           st = Error(proto::PROTOCOL_ERROR, "unparsable response from " + options_.address);
         if (payload_len) *payload_len = plen;
         promise.set_value(st);
       });
  return fut.get();
}

void RpcChannel::ReadLoop(std::shared_ptr<Conn> conn) {
  Status st;
  try {
    st = ReadFrames(*conn);
  } catch (const std::bad_alloc&) {
    st = Error(proto::UNAVAILABLE, "out of memory reading a response");
    LOG_WARN("closing connection to {}: {}", options_.address, st.ToString());
  }
  conn->FailAll(Error(proto::UNAVAILABLE, "connection to " + options_.address + " lost: " + st.ToString()));
  std::lock_guard<std::mutex> l(mu_);
  --live_readers_;
  cv_.notify_all();
}

Status RpcChannel::ReadFrames(Conn& c) {
  Conn* conn = &c;
  FrameReader in(*conn->conn, options_.max_frame_bytes);
  // A read that failed because the reaper shut a stalled frame down is a timeout.
  auto stalled = [&](Status st) {
    if (!conn->read_timed_out.load()) return st;
    return Error(proto::TIMEOUT, "response from " + options_.address + " stalled mid-frame: " + st.message());
  };
  Status st;
  for (;;) {
    FrameHeader h;
    SetReadDeadline(*conn, Clock::kNever);
    st = in.WaitForData();  // idle between frames: no deadline
    if (st.ok()) {
      SetReadDeadline(*conn, options_.clock->NowMs() + options_.frame_read_timeout_ms);
      st = in.ReadHeader(&h);
    }
    if (st.ok() && !h.is_response()) st = Error(proto::PROTOCOL_ERROR, "request frame sent to a client");
    if (!st.ok()) {
      st = stalled(st);
      if (st.code() != proto::UNAVAILABLE) LOG_WARN("closing connection to {}: {}", options_.address, st.ToString());
      return st;
    }
    std::string msg(h.message_len, '\0');
    st = in.Read(msg.data(), msg.size());
    if (!st.ok()) return stalled(st);
    Conn::Pending p;
    if (!conn->Take(h.request_id, &p)) {  // timed out earlier: discard
      st = in.Skip(h.payload_len);
      if (!st.ok()) return stalled(st);
      continue;
    }
    if (h.status != proto::OK) {
      proto::ErrorDetail d;
      d.ParseFromString(msg);
      st = in.Skip(h.payload_len);
      p.done(Error(static_cast<ErrorCode>(h.status), d.message()), std::string(), 0);
      if (!st.ok()) return stalled(st);
      continue;
    }
    uint64_t room = 0;
    for (const auto& v : p.sink) room += v.iov_len;
    if (h.payload_len > room) {
      st = in.Skip(h.payload_len);
      p.done(Error(proto::PROTOCOL_ERROR, "response payload larger than the destination"), std::string(), 0);
      if (!st.ok()) return stalled(st);
      continue;
    }
    if (h.payload_len > 0) {
      std::vector<iovec> dst;
      uint64_t left = h.payload_len;
      for (const auto& v : p.sink) {
        if (left == 0) break;
        size_t k = std::min<uint64_t>(left, v.iov_len);
        dst.push_back({v.iov_base, k});
        left -= k;
      }
      // The payload goes into the caller's sink, so its callback cannot run
      // before the read ends: past the call's deadline the read is cut.
      SetReadDeadline(*conn, p.deadline_ms);
      st = in.ReadV(dst.data(), static_cast<int>(dst.size()));
      if (!st.ok()) {
        // The sink may hold partial bytes, but the caller learns of failure
        // before it may reuse the buffer.
        st = stalled(st);
        p.done(st, std::string(), 0);
        return st;
      }
    }
    p.done(Status::OK(), msg, h.payload_len);
  }
}

void RpcChannel::ReapLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    int64_t wake_ms = next_reap_ms_;
    options_.clock->WaitUntil(cv_, l, wake_ms, [&] { return stopping_ || next_reap_ms_ < wake_ms; });
    if (stopping_) break;
    if (options_.clock->NowMs() < next_reap_ms_) continue;  // woken by an earlier deadline, not yet due
    // Calls made from here on lower next_reap_ms_ again; ExpireCalls sees
    // every call made before.
    next_reap_ms_ = Clock::kNever;
    l.unlock();
    int64_t earliest = ExpireCalls();
    l.lock();
    next_reap_ms_ = std::min(next_reap_ms_, earliest);
  }
}

int64_t RpcChannel::ExpireCalls() {
  std::shared_ptr<Conn> conn;
  {
    std::lock_guard<std::mutex> cl(connect_mu_);
    conn = conn_;
  }
  // Calls of an earlier connection were failed when it broke.
  if (!conn) return Clock::kNever;
  std::vector<Conn::Pending> expired;
  int64_t now = options_.clock->NowMs();
  int64_t earliest = Clock::kNever;
  bool stalled = false;
  {
    std::lock_guard<std::mutex> pl(conn->mu);
    if (conn->read_deadline_ms <= now) {
      stalled = true;
      conn->read_deadline_ms = Clock::kNever;
    } else {
      earliest = std::min(earliest, conn->read_deadline_ms);
    }
    for (auto it = conn->pending.begin(); it != conn->pending.end();) {
      if (it->second.deadline_ms <= now) {
        expired.push_back(std::move(it->second));
        it = conn->pending.erase(it);
      } else {
        earliest = std::min(earliest, it->second.deadline_ms);
        ++it;
      }
    }
  }
  if (stalled) {
    // The reader is stuck inside a frame: breaking the connection frees it
    // (and reports its call as TIMEOUT).
    LOG_WARN("closing connection to {}: a response frame stalled past its deadline", options_.address);
    conn->read_timed_out = true;
    conn->conn->Shutdown();
  }
  for (auto& p : expired) p.done(Error(proto::TIMEOUT, "call to " + options_.address + " timed out"), "", 0);
  return earliest;
}

}  // namespace shoal::rpc
