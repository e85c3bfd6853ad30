#include "common/rpc/loop_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"

namespace shoal::rpc {

struct LoopServer::Shared {
  Options options;
  std::unordered_map<uint32_t, LoopHandler> handlers;
  std::atomic<uint64_t> rejected{0}, open{0}, stalls{0}, timed_out{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;  // guards handshaking
  std::condition_variable cv;
  int handshaking = 0;
  // Connections per loop; each set is touched only by its loop's thread.
  std::vector<std::unordered_set<std::shared_ptr<LoopConnection>>> conns;
};

namespace {
constexpr size_t kRecvBuffer = 64 << 10;
constexpr size_t kMaxIovPerSend = 512;

// A reply waiting to be sent: header, message, payload slices.
struct OutFrame {
  uint8_t header[kFrameHeaderSize];
  std::string message;
  std::vector<iovec> payload;
  std::function<void()> release;
  AlignedBuffer request_payload;  // kept until sent: a reply may point into it (an echo)
  uint64_t bytes = 0;   // on the wire
  uint64_t charge = 0;  // what it counts against the connection's bytes in flight
};
}  // namespace

class LoopConnection : public std::enable_shared_from_this<LoopConnection> {
 public:
  LoopConnection(std::shared_ptr<LoopServer::Shared> shared, loop::EventLoop* loop, size_t loop_index, int fd,
                 std::string peer)
      : shared_(std::move(shared)), loop_(loop), loop_index_(loop_index), fd_(fd), peer_(std::move(peer)),
        rbuf_(new uint8_t[kRecvBuffer]) {
    recv_op_.conn = this;
    recv_op_.done = &OnRecvDone;
    send_op_.conn = this;
    send_op_.done = &OnSendDone;
  }
  ~LoopConnection() {
    if (fd_ >= 0) ::close(fd_);
    shared_->open.fetch_sub(1, std::memory_order_relaxed);
  }

  loop::EventLoop* loop() const { return loop_; }
  const std::string& peer() const { return peer_; }
  uint64_t max_frame_bytes() const { return shared_->options.max_frame_bytes; }

  void Start() { Resume(); }

  // Loop thread. Idempotent.
  void Close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    if (!why.empty()) LOG_WARN("{}: closing connection from {}: {}", shared_->options.name, peer_, why);
    ::shutdown(fd_, SHUT_RDWR);  // completes the receive and send in flight
    if (frame_timer_) loop_->CancelTimer(frame_timer_);
    if (send_timer_) loop_->CancelTimer(send_timer_);
    frame_timer_ = send_timer_ = 0;
    if (!sending_) ReleaseAll();
    shared_->conns[loop_index_].erase(shared_from_this());
  }

  // Loop thread.
  void QueueReply(std::unique_ptr<OutFrame> f) {
    if (closed_) {
      Finish(*f);
      return;
    }
    bytes_in_flight_ += f->bytes;
    f->charge += f->bytes;
    out_.push_back(std::move(f));
    if (!sending_ && !flush_ref_) {
      flush_ref_ = shared_from_this();
      loop_->AtEndOfIteration([this] {
        auto self = std::move(flush_ref_);
        Flush();
      });
    }
  }

  void ClosePosted(const std::string& why) {
    if (loop_->InLoopThread()) return Close(why);
    loop_->Post([self = shared_from_this(), why] { self->Close(why); });
  }

 private:
  struct ConnOp : loop::LoopOp {
    LoopConnection* conn = nullptr;
  };

  bool OverLimits() const {
    return requests_in_flight_ >= shared_->options.max_requests_in_flight ||
           bytes_in_flight_ >= shared_->options.max_bytes_in_flight;
  }

  void ArmRecv() {
    if (closed_ || recv_ref_) return;
    io_uring_sqe* sqe = loop_->Sqe();
    if (!sqe) return Close("the ring refused a receive");
    if (big_) {
      size_t msg_left = big_msg_.size() > big_got_ ? big_msg_.size() - big_got_ : 0;
      size_t pay_done = big_got_ > big_msg_.size() ? big_got_ - big_msg_.size() : 0;
      int n = 0;
      if (msg_left) big_iov_[n++] = {big_msg_.data() + big_got_, msg_left};
      if (big_hdr_.payload_len > pay_done)
        big_iov_[n++] = {big_payload_.data() + pay_done, big_hdr_.payload_len - pay_done};
      big_msghdr_ = msghdr{};
      big_msghdr_.msg_iov = big_iov_;
      big_msghdr_.msg_iovlen = n;
      io_uring_prep_recvmsg(sqe, fd_, &big_msghdr_, 0);
    } else {
      // Keep room for the rest of a partial frame: move it to the front when
      // it is small (cheap) or the space after it runs low.
      if (rbegin_ > 0 && (rend_ - rbegin_ <= 4096 || kRecvBuffer - rend_ < (16 << 10))) {
        std::memmove(rbuf_.get(), rbuf_.get() + rbegin_, rend_ - rbegin_);
        rend_ -= rbegin_;
        rbegin_ = 0;
      }
      io_uring_prep_recv(sqe, fd_, rbuf_.get() + rend_, kRecvBuffer - rend_, 0);
    }
    loop::EventLoop::SetOp(sqe, &recv_op_);
    recv_ref_ = shared_from_this();
  }

  static void OnRecvDone(loop::LoopOp* op, int32_t res) {
    LoopConnection* c = static_cast<ConnOp*>(op)->conn;
    auto self = std::move(c->recv_ref_);
    c->OnRecv(res);
  }

  void OnRecv(int32_t res) {
    if (closed_) return;
    if (res <= 0) {
      // EOF or reset: the peer went away, not worth a log line.
      bool quiet = res == 0 || res == -ECONNRESET || res == -EPIPE || res == -ECANCELED;
      return Close(quiet ? "" : std::string("receive: ") + strerror(-res));
    }
    if (big_) {
      big_got_ += static_cast<size_t>(res);
      if (big_got_ == big_msg_.size() + big_hdr_.payload_len) {
        big_ = false;
        Dispatch(big_hdr_, std::move(big_msg_), std::move(big_payload_));
        big_msg_.clear();
      }
    } else {
      rend_ += static_cast<size_t>(res);
    }
    Resume();
  }

  // Dispatches what is buffered and reads on — unless the connection is at
  // its limits, in which case it waits (frames stay buffered, no deadline
  // runs: the peer is not the slow one) until replies drain.
  void Resume() {
    if (closed_ || recv_ref_) return;
    if (!big_ && !ParseBuffered()) return;
    if (OverLimits()) {
      if (frame_timer_) loop_->CancelTimer(frame_timer_);
      frame_timer_ = 0;
      shared_->stalls.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    WatchPartialFrame();
    ArmRecv();
  }

  // Dispatches every whole frame in the buffer; starts a big frame that does
  // not fit. False when the connection was closed.
  bool ParseBuffered() {
    while (!closed_ && !OverLimits() && rend_ - rbegin_ >= kFrameHeaderSize) {
      FrameHeader h;
      Status st = DecodeFrameHeader(rbuf_.get() + rbegin_, shared_->options.max_frame_bytes, &h);
      if (st.ok() && h.is_response()) st = Error(proto::PROTOCOL_ERROR, "response frame sent to a server");
      if (!st.ok()) {
        Close(st.ToString());
        return false;
      }
      const size_t body = size_t{h.message_len} + h.payload_len;
      const size_t avail = rend_ - rbegin_ - kFrameHeaderSize;
      const uint8_t* p = rbuf_.get() + rbegin_ + kFrameHeaderSize;
      if (avail >= body) {
        rbegin_ += kFrameHeaderSize + body;
        AlignedBuffer payload;
        if (h.payload_len) {
          payload = AlignedBuffer(h.payload_len);
          std::memcpy(payload.data(), p + h.message_len, h.payload_len);
        }
        Dispatch(h, std::string(reinterpret_cast<const char*>(p), h.message_len), std::move(payload));
        continue;
      }
      if (kFrameHeaderSize + body <= kRecvBuffer) break;  // fits: wait for the rest
      // Too big for the buffer: receive the rest straight into its own storage.
      big_ = true;
      big_hdr_ = h;
      big_msg_.assign(h.message_len, '\0');
      big_payload_ = h.payload_len ? AlignedBuffer(h.payload_len) : AlignedBuffer();
      size_t m = std::min<size_t>(avail, h.message_len);
      std::memcpy(big_msg_.data(), p, m);
      if (avail > m) std::memcpy(big_payload_.data(), p + m, avail - m);
      big_got_ = avail;
      rbegin_ = rend_ = 0;
      break;
    }
    return !closed_;
  }

  // A frame begun must arrive whole within frame_read_timeout_ms.
  void WatchPartialFrame() {
    bool partial = big_ || rend_ > rbegin_;
    if (!partial) {
      if (frame_timer_) loop_->CancelTimer(frame_timer_);
      frame_timer_ = 0;
      frame_seq_seen_ = frames_;
      return;
    }
    if (frame_timer_ && frame_seq_seen_ == frames_) return;  // the same frame is still arriving
    if (frame_timer_) loop_->CancelTimer(frame_timer_);
    frame_seq_seen_ = frames_;
    std::weak_ptr<LoopConnection> weak = shared_from_this();
    frame_timer_ = loop_->After(shared_->options.frame_read_timeout_ms, [weak] {
      if (auto c = weak.lock()) {
        c->frame_timer_ = 0;
        c->shared_->timed_out.fetch_add(1, std::memory_order_relaxed);
        c->Close("frame not received whole within " + std::to_string(c->shared_->options.frame_read_timeout_ms) +
                 " ms");
      }
    });
  }

  void Dispatch(const FrameHeader& h, std::string message, AlignedBuffer payload) {
    ++frames_;
    ++requests_in_flight_;
    bytes_in_flight_ += h.payload_len;
    auto call = std::make_unique<LoopCall>(shared_from_this(), h, std::move(message), std::move(payload));
    auto it = shared_->handlers.find(h.method);
    if (it == shared_->handlers.end())
      return call->ReplyError(Error(proto::NOT_SUPPORTED, "unknown method " + std::to_string(h.method)));
    it->second(std::move(call));
  }

  void Flush() {
    if (closed_ || sending_ || out_.empty()) return;
    send_iov_.clear();
    size_t skip = sent_of_front_;
    for (const auto& f : out_) {
      auto add = [&](const void* base, size_t len) {
        if (len == 0) return;
        if (skip >= len) {
          skip -= len;
          return;
        }
        send_iov_.push_back({const_cast<uint8_t*>(static_cast<const uint8_t*>(base)) + skip, len - skip});
        skip = 0;
      };
      add(f->header, kFrameHeaderSize);
      add(f->message.data(), f->message.size());
      for (const iovec& v : f->payload) add(v.iov_base, v.iov_len);
      if (send_iov_.size() >= kMaxIovPerSend) break;
    }
    if (send_iov_.size() > IOV_MAX) send_iov_.resize(IOV_MAX);
    io_uring_sqe* sqe = loop_->Sqe();
    if (!sqe) return Close("the ring refused a send");
    send_msghdr_ = msghdr{};
    send_msghdr_.msg_iov = send_iov_.data();
    send_msghdr_.msg_iovlen = send_iov_.size();
    io_uring_prep_sendmsg(sqe, fd_, &send_msghdr_, MSG_NOSIGNAL);
    loop::EventLoop::SetOp(sqe, &send_op_);
    send_ref_ = shared_from_this();
    sending_ = true;
    send_started_ms_ = loop_->clock().NowMs();
    if (!send_timer_) ArmSendTimer(send_started_ms_ + shared_->options.send_timeout_ms);
  }

  // One timer per connection, not one per send: when it fires it closes the
  // connection if the send in flight has made no progress for the timeout,
  // re-arms for the send in flight otherwise, and lapses when idle.
  void ArmSendTimer(int64_t deadline_ms) {
    std::weak_ptr<LoopConnection> weak = shared_from_this();
    send_timer_ = loop_->At(deadline_ms, [weak] {
      auto c = weak.lock();
      if (!c) return;
      c->send_timer_ = 0;
      if (!c->sending_ || c->closed_) return;
      int64_t deadline = c->send_started_ms_ + c->shared_->options.send_timeout_ms;
      if (c->loop_->clock().NowMs() < deadline) return c->ArmSendTimer(deadline);
      c->shared_->timed_out.fetch_add(1, std::memory_order_relaxed);
      c->Close("peer did not take its replies within " + std::to_string(c->shared_->options.send_timeout_ms) + " ms");
    });
  }

  static void OnSendDone(loop::LoopOp* op, int32_t res) {
    LoopConnection* c = static_cast<ConnOp*>(op)->conn;
    auto self = std::move(c->send_ref_);
    c->OnSend(res);
  }

  void OnSend(int32_t res) {
    sending_ = false;
    if (closed_) return ReleaseAll();
    if (res < 0) {
      bool quiet = res == -EPIPE || res == -ECONNRESET || res == -ECANCELED;
      return Close(quiet ? "" : std::string("send: ") + strerror(-res));
    }
    size_t n = static_cast<size_t>(res) + sent_of_front_;
    while (!out_.empty() && n >= out_.front()->bytes) {
      n -= out_.front()->bytes;
      std::unique_ptr<OutFrame> f = std::move(out_.front());
      out_.pop_front();
      Finish(*f);
    }
    sent_of_front_ = n;
    Flush();
    Resume();
  }

  // The frame is sent (or will never be): its bytes may be reused, its
  // request leaves the connection's budget.
  void Finish(OutFrame& f) {
    if (f.release) f.release();
    --requests_in_flight_;
    bytes_in_flight_ -= f.charge;
  }

  void ReleaseAll() {
    while (!out_.empty()) {
      std::unique_ptr<OutFrame> f = std::move(out_.front());
      out_.pop_front();
      Finish(*f);
    }
  }

  friend class LoopCall;
  std::shared_ptr<LoopServer::Shared> shared_;
  loop::EventLoop* loop_;
  size_t loop_index_;
  int fd_;
  std::string peer_;
  bool closed_ = false;

  // Receiving.
  ConnOp recv_op_;
  std::shared_ptr<LoopConnection> recv_ref_;  // set while a receive is in flight
  std::unique_ptr<uint8_t[]> rbuf_;
  size_t rbegin_ = 0, rend_ = 0;
  bool big_ = false;  // receiving a frame larger than rbuf_ into its own storage
  FrameHeader big_hdr_;
  std::string big_msg_;
  AlignedBuffer big_payload_;
  size_t big_got_ = 0;  // body bytes of the big frame received so far
  iovec big_iov_[2];
  msghdr big_msghdr_{};
  uint64_t frames_ = 0, frame_seq_seen_ = 0;
  loop::TimerWheel::TimerId frame_timer_ = 0;

  // Budget.
  uint32_t requests_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;

  // Sending.
  ConnOp send_op_;
  std::shared_ptr<LoopConnection> send_ref_, flush_ref_;
  std::deque<std::unique_ptr<OutFrame>> out_;
  size_t sent_of_front_ = 0;  // bytes of out_.front() already sent
  bool sending_ = false;
  std::vector<iovec> send_iov_;
  msghdr send_msghdr_{};
  loop::TimerWheel::TimerId send_timer_ = 0;
  int64_t send_started_ms_ = 0;  // when the send in flight was submitted
};

// ---- LoopCall ----

LoopCall::LoopCall(std::shared_ptr<LoopConnection> conn, const FrameHeader& header, std::string message,
                   AlignedBuffer payload)
    : conn_(std::move(conn)), header_(header), message_(std::move(message)), payload_(std::move(payload)) {}

LoopCall::~LoopCall() {
  if (!replied_) ReplyError(Error(proto::INTERNAL, "the server dropped the request"));
}

loop::EventLoop* LoopCall::loop() const { return conn_->loop(); }
std::string LoopCall::peer() const { return conn_->peer(); }

bool LoopCall::Parse(google::protobuf::Message* msg) {
  if (msg->ParseFromString(message_)) return true;
  LOG_WARN("closing connection from {}: unparsable {} request", peer(), proto::Method_Name(method()));
  ReplyError(Error(proto::PROTOCOL_ERROR, "unparsable request message"));
  conn_->ClosePosted("");
  return false;
}

void LoopCall::Reply(const google::protobuf::Message& rsp, const iovec* payload, int payload_iovs,
                     std::function<void()> release) {
  ReplyRaw(rsp.SerializeAsString(), payload, payload_iovs, std::move(release));
}

void LoopCall::ReplyRaw(std::string message, const iovec* payload, int payload_iovs, std::function<void()> release) {
  replied_ = true;
  auto f = std::make_unique<OutFrame>();
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = proto::OK;
  h.message_len = static_cast<uint32_t>(message.size());
  uint64_t payload_len = 0;
  f->payload.reserve(payload_iovs);
  for (int i = 0; i < payload_iovs; ++i) {
    if (payload[i].iov_len == 0) continue;
    f->payload.push_back(payload[i]);
    payload_len += payload[i].iov_len;
  }
  h.payload_len = static_cast<uint32_t>(payload_len);
  EncodeFrameHeader(h, f->header);
  f->message = std::move(message);
  f->release = std::move(release);
  f->bytes = kFrameHeaderSize + f->message.size() + payload_len;
  f->charge = header_.payload_len;  // the request's payload leaves the budget with its reply
  f->request_payload = std::move(payload_);
  if (conn_->loop()->InLoopThread()) return conn_->QueueReply(std::move(f));
  // std::function needs a copyable closure: hand the frame over by pointer.
  OutFrame* raw = f.release();
  conn_->loop()->Post([conn = conn_, raw] { conn->QueueReply(std::unique_ptr<OutFrame>(raw)); });
}

void LoopCall::ReplyError(const Status& st) {
  replied_ = true;
  auto f = std::make_unique<OutFrame>();
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = st.code();
  proto::ErrorDetail d;
  d.set_message(st.message());
  f->message = d.SerializeAsString();
  h.message_len = static_cast<uint32_t>(f->message.size());
  h.payload_len = 0;
  EncodeFrameHeader(h, f->header);
  f->bytes = kFrameHeaderSize + f->message.size();
  f->charge = header_.payload_len;
  payload_ = AlignedBuffer();  // an error carries no payload
  if (conn_->loop()->InLoopThread()) return conn_->QueueReply(std::move(f));
  OutFrame* raw = f.release();
  conn_->loop()->Post([conn = conn_, raw] { conn->QueueReply(std::unique_ptr<OutFrame>(raw)); });
}

// ---- LoopServer ----

LoopServer::LoopServer(Options options, Transport* transport, std::vector<loop::EventLoop*> loops)
    : shared_(std::make_shared<Shared>()), transport_(transport), loops_(std::move(loops)) {
  shared_->options = std::move(options);
  shared_->conns.resize(loops_.size());
}

LoopServer::~LoopServer() { Stop(); }

void LoopServer::Register(proto::Method method, LoopHandler handler) { shared_->handlers[method] = std::move(handler); }

Status LoopServer::Start() {
  if (loops_.empty()) return Error(proto::INVALID_ARGUMENT, shared_->options.name + ": no event loops to serve on");
  ASSIGN_OR_RETURN(listener_, transport_->Listen(shared_->options.listen));
  try {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  } catch (const std::system_error& e) {
    listener_.reset();
    return Error(proto::INTERNAL, shared_->options.name + ": cannot start the accept thread: " + e.what());
  }
  started_ = true;
  LOG_INFO("{} listening on {} ({}, {} event loops)", shared_->options.name, listener_->Address(), transport_->Name(),
           loops_.size());
  return Status::OK();
}

std::string LoopServer::Address() const { return listener_ ? listener_->Address() : ""; }
uint64_t LoopServer::rejected_connections() const { return shared_->rejected.load(); }
uint64_t LoopServer::open_connections() const { return shared_->open.load(); }
uint64_t LoopServer::backpressure_stalls() const { return shared_->stalls.load(); }
uint64_t LoopServer::timed_out_connections() const { return shared_->timed_out.load(); }

void LoopServer::AcceptLoop() {
  const auto& o = shared_->options;
  for (;;) {
    auto conn = listener_->Accept();
    if (!conn.ok()) {
      if (conn.status().code() == proto::CANCELLED) return;
      LOG_WARN("{}: {}", o.name, conn.status().ToString());
      continue;
    }
    if (shared_->stopping.load()) return;
    if (shared_->open.load() >= static_cast<uint64_t>(o.max_connections)) {
      shared_->rejected.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("{}: refused connection from {}: {} connections open (max_connections)", o.name, (*conn)->PeerName(),
               o.max_connections);
      continue;  // closing it is the refusal
    }
    shared_->open.fetch_add(1, std::memory_order_relaxed);  // a handshake counts against the cap
    {
      std::lock_guard<std::mutex> l(shared_->mu);
      ++shared_->handshaking;
    }
    auto done = [s = shared_] {
      std::lock_guard<std::mutex> l(s->mu);
      --s->handshaking;
      s->cv.notify_all();
    };
    try {
      std::thread([this, c = std::move(conn).value(), done]() mutable {
        Handshake(std::move(c));
        done();
      }).detach();
    } catch (const std::system_error& e) {
      shared_->open.fetch_sub(1, std::memory_order_relaxed);
      shared_->rejected.fetch_add(1, std::memory_order_relaxed);
      LOG_WARN("{}: refused a connection: cannot start its handshake thread: {}", o.name, e.what());
      done();
    }
  }
}

void LoopServer::Handshake(std::unique_ptr<Connection> conn) {
  const auto& o = shared_->options;
  // The total deadline: a timer on a loop shuts the socket down if the
  // handshake is still running when it fires (per-read timeouts alone let a
  // peer that trickles bytes go on for ever).
  struct Watch {
    std::mutex mu;
    Connection* conn;
    bool over = false;  // the handshake ended, or the deadline passed
    bool timed_out = false;
  };
  auto watch = std::make_shared<Watch>();
  watch->conn = conn.get();
  loop::EventLoop* timer_loop = loops_[0];
  timer_loop->Post([timer_loop, watch, ms = o.handshake_timeout_ms] {
    timer_loop->After(ms, [watch] {
      std::lock_guard<std::mutex> l(watch->mu);
      if (watch->over) return;
      watch->over = watch->timed_out = true;
      watch->conn->Shutdown();
    });
  });
  Credentials creds = o.creds;
  creds.timeout_ms = std::max(1, std::min(creds.timeout_ms, o.handshake_timeout_ms));
  Status st = ServerHandshake(*conn, creds);
  {
    std::lock_guard<std::mutex> l(watch->mu);
    if (watch->timed_out) {
      shared_->timed_out.fetch_add(1, std::memory_order_relaxed);
      st = Error(proto::TIMEOUT, "handshake not done within " + std::to_string(o.handshake_timeout_ms) + " ms");
    }
    watch->over = true;
  }
  int fd = st.ok() ? conn->ReleaseFd() : -1;
  if (st.ok() && fd < 0) st = Error(proto::INTERNAL, "transport " + transport_->Name() + " has no socket to hand over");
  if (!st.ok()) {
    shared_->open.fetch_sub(1, std::memory_order_relaxed);
    shared_->rejected.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("{}: refused connection from {}: {}", o.name, conn->PeerName(), st.ToString());
    return;
  }
  size_t idx = next_loop_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
  std::string peer = conn->PeerName();
  loops_[idx]->Post([s = shared_, loop = loops_[idx], idx, fd, peer] {
    auto c = std::make_shared<LoopConnection>(s, loop, idx, fd, peer);
    if (s->stopping.load()) return;  // its destructor closes the socket
    s->conns[idx].insert(c);
    c->Start();
  });
}

void LoopServer::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  shared_->stopping.store(true);
  listener_->Close();
  accept_thread_.join();
  {
    // Handshakes end within their deadline (creds.timeout_ms).
    std::unique_lock<std::mutex> l(shared_->mu);
    shared_->cv.wait(l, [&] { return shared_->handshaking == 0; });
  }
  std::vector<std::future<void>> closed;
  for (size_t i = 0; i < loops_.size(); ++i) {
    auto p = std::make_shared<std::promise<void>>();
    closed.push_back(p->get_future());
    loops_[i]->Post([s = shared_, i, p] {
      auto conns = s->conns[i];  // Close erases from the set
      for (auto& c : conns) c->Close("");
      p->set_value();
    });
  }
  for (auto& f : closed) f.wait();
}

}  // namespace shoal::rpc
