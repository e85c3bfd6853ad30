#include "common/rpc/loop_channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <future>
#include <thread>

#include "common/log.h"

namespace shoal::rpc {

namespace {
constexpr size_t kRecvBuffer = 64 << 10;
constexpr size_t kMaxIovPerSend = 512;
}  // namespace

struct LoopChannel::Impl : std::enable_shared_from_this<Impl> {
  struct Slot {
    bool used = false;
    uint32_t gen = 1;
    uint8_t header[kFrameHeaderSize];
    std::string message;
    std::vector<iovec> payload;
    std::vector<iovec> sink;
    Callback done;
    loop::TimerWheel::TimerId timer = 0;
    bool in_send = false;    // its bytes are in the send in flight
    bool in_recv = false;    // its response payload is being received into its sink
    bool timed_out = false;  // the deadline passed while in_send / in_recv
    Status failed;           // set when the connection broke while in_send / in_recv
  };

  // One connection: its socket, its receive state, its send in flight.
  struct Conn {
    struct Op : loop::LoopOp {
      Conn* conn = nullptr;
    };
    Impl* impl;
    std::shared_ptr<Impl> impl_ref;  // held while this connection has ops in flight
    int fd;
    bool dead = false;
    Op recv_op, send_op;
    std::shared_ptr<Conn> recv_ref, send_ref;  // set while the op is in flight
    // Receiving.
    std::unique_ptr<uint8_t[]> rbuf{new uint8_t[kRecvBuffer]};
    size_t rbegin = 0, rend = 0;
    enum { kFrames, kBigMessage, kPayload, kDiscard } rstate = kFrames;
    FrameHeader rh;          // the response being received (kBigMessage, kPayload, kDiscard)
    std::string rmsg;        // its message
    size_t rgot = 0;         // bytes of rmsg (kBigMessage) or of the payload (kPayload) received
    uint64_t rdiscard = 0;   // payload bytes still to drop (kDiscard)
    uint32_t rslot = 0;      // the call receiving its payload (kPayload)
    std::vector<iovec> riov;  // the rest of its sink
    msghdr rmsghdr{};
    // Sending.
    bool sending = false;
    std::vector<std::pair<uint32_t, uint32_t>> batch;  // (slot, gen) in the send
    std::vector<iovec> siov;
    size_t sfirst = 0;  // first siov entry not fully sent
    msghdr smsghdr{};

    Conn(Impl* i, int f) : impl(i), fd(f) {
      recv_op.conn = send_op.conn = this;
      recv_op.done = &Impl::OnRecvDone;
      send_op.done = &Impl::OnSendDone;
    }
    ~Conn() { ::close(fd); }
  };

  Options options;
  Transport* transport;
  loop::EventLoop* loop;
  // Everything below: loop thread only.
  std::vector<Slot> slots;
  std::vector<uint32_t> free_slots;
  uint32_t used = 0;
  std::deque<std::pair<uint32_t, uint32_t>> send_queue;  // (slot, gen) not yet sent
  std::shared_ptr<Conn> conn;                           // the live connection
  bool connecting = false;
  std::thread connect_thread;
  bool flush_scheduled = false;
  std::shared_ptr<Impl> flush_ref;
  bool closed = false;
  std::shared_ptr<std::promise<void>> drained;  // the destructor waits on it

  Impl(Options o, Transport* t, loop::EventLoop* l) : options(std::move(o)), transport(t), loop(l) {}

  static uint64_t IdOf(uint32_t idx, uint32_t gen) { return (uint64_t{gen} << 32) | idx; }

  void Add(proto::Method method, std::string message, std::vector<iovec> payload, std::vector<iovec> sink,
           int timeout_ms, Callback done) {
    if (closed) return done(Error(proto::CANCELLED, "channel closed"), std::string(), 0);
    if (used >= options.max_calls)
      return done(Error(proto::UNAVAILABLE, "too many calls outstanding to " + options.address), std::string(), 0);
    uint32_t idx;
    if (!free_slots.empty()) {
      idx = free_slots.back();
      free_slots.pop_back();
    } else {
      idx = static_cast<uint32_t>(slots.size());
      slots.emplace_back();
    }
    Slot& s = slots[idx];
    s.used = true;
    ++used;
    FrameHeader h;
    h.method = method;
    h.request_id = IdOf(idx, s.gen);
    h.message_len = static_cast<uint32_t>(message.size());
    uint64_t plen = 0;
    for (const iovec& v : payload) plen += v.iov_len;
    h.payload_len = static_cast<uint32_t>(plen);
    EncodeFrameHeader(h, s.header);
    s.message = std::move(message);
    s.payload = std::move(payload);
    s.sink = std::move(sink);
    s.done = std::move(done);
    s.in_send = s.in_recv = s.timed_out = false;
    s.failed = Status::OK();
    uint32_t gen = s.gen;
    s.timer = loop->After(timeout_ms, [this, idx, gen] { OnTimeout(idx, gen); });
    send_queue.emplace_back(idx, gen);
    ScheduleFlush();
  }

  void ScheduleFlush() {
    if (flush_scheduled) return;
    flush_scheduled = true;
    flush_ref = shared_from_this();  // the hook may run after the channel let go
    loop->AtEndOfIteration([this] {
      auto self = std::move(flush_ref);
      flush_scheduled = false;
      Flush();
    });
  }

  void Complete(uint32_t idx, const Status& st, const std::string& message, uint32_t payload_len) {
    Slot& s = slots[idx];
    if (s.timer) loop->CancelTimer(s.timer);
    Callback done = std::move(s.done);
    s.done = nullptr;
    s.used = false;
    ++s.gen;
    s.message.clear();
    s.payload.clear();
    s.sink.clear();
    --used;
    free_slots.push_back(idx);
    done(st, message, payload_len);
    if (closed && used == 0 && drained) {
      auto d = std::move(drained);
      drained.reset();
      d->set_value();
    }
  }

  void OnTimeout(uint32_t idx, uint32_t gen) {
    Slot& s = slots[idx];
    if (!s.used || s.gen != gen) return;
    s.timer = 0;
    if (s.in_send || s.in_recv) {
      s.timed_out = true;  // completes when its I/O ends
      return;
    }
    Complete(idx, Error(proto::TIMEOUT, "call to " + options.address + " timed out"), std::string(), 0);
  }

  // ---- connecting ----

  void StartConnect() {
    if (connecting || closed) return;
    connecting = true;
    if (connect_thread.joinable()) connect_thread.join();  // finished: it posted its result
    try {
      connect_thread = std::thread([self = shared_from_this()] {
        Status st;
        int fd = -1;
        auto raw = self->transport->Connect(self->options.address, self->options.connect_timeout_ms);
        if (!raw.ok()) {
          st = raw.status();
        } else {
          Credentials creds = self->options.creds;
          creds.timeout_ms = std::max(creds.timeout_ms, 1);
          st = ClientHandshake(**raw, creds);
          if (!st.ok()) st = Error(st.code(), "handshake with " + self->options.address + ": " + st.message());
          if (st.ok()) fd = (*raw)->ReleaseFd();
          if (st.ok() && fd < 0)
            st = Error(proto::INTERNAL, "transport " + self->transport->Name() + " has no socket to hand over");
        }
        self->loop->Post([self, st, fd] { self->OnConnected(st, fd); });
      });
    } catch (const std::system_error& e) {
      connecting = false;
      FailQueued(Error(proto::UNAVAILABLE, std::string("cannot start a connect thread: ") + e.what()));
    }
  }

  void OnConnected(const Status& st, int fd) {
    connecting = false;
    if (closed) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (!st.ok()) return FailQueued(st);
    conn = std::make_shared<Conn>(this, fd);
    ArmRecv(conn);
    Flush();
  }

  void FailQueued(const Status& st) {
    auto queue = std::move(send_queue);
    send_queue.clear();
    for (auto [idx, gen] : queue)
      if (slots[idx].used && slots[idx].gen == gen) Complete(idx, st, std::string(), 0);
  }

  // The connection is gone: every call on it or waiting for it fails (those
  // whose bytes are in an op in flight when that op ends).
  void Break(const std::shared_ptr<Conn>& c, const Status& st) {
    if (c->dead) return;
    c->dead = true;
    ::shutdown(c->fd, SHUT_RDWR);
    if (conn == c) conn.reset();
    for (uint32_t idx = 0; idx < slots.size(); ++idx) {
      Slot& s = slots[idx];
      if (!s.used) continue;
      if (s.in_send || s.in_recv) {
        s.failed = st;
        continue;
      }
      Complete(idx, st, std::string(), 0);
    }
    send_queue.clear();
  }

  // ---- sending ----

  void Flush() {
    if (closed || send_queue.empty()) return;
    if (!conn) return StartConnect();
    Conn& c = *conn;
    if (c.sending) return;
    c.batch.clear();
    c.siov.clear();
    while (!send_queue.empty() && c.siov.size() < kMaxIovPerSend) {
      auto [idx, gen] = send_queue.front();
      send_queue.pop_front();
      Slot& s = slots[idx];
      if (!s.used || s.gen != gen) continue;
      s.in_send = true;
      c.batch.emplace_back(idx, gen);
      c.siov.push_back({s.header, kFrameHeaderSize});
      if (!s.message.empty()) c.siov.push_back({s.message.data(), s.message.size()});
      for (const iovec& v : s.payload)
        if (v.iov_len) c.siov.push_back(v);
    }
    if (c.batch.empty()) return;
    c.sfirst = 0;
    SubmitSend(conn);
  }

  void SubmitSend(const std::shared_ptr<Conn>& c) {
    io_uring_sqe* sqe = loop->Sqe();
    if (!sqe) return EndSend(c, Error(proto::UNAVAILABLE, "the ring refused a send"));
    c->smsghdr = msghdr{};
    c->smsghdr.msg_iov = c->siov.data() + c->sfirst;
    c->smsghdr.msg_iovlen = std::min<size_t>(c->siov.size() - c->sfirst, IOV_MAX);
    io_uring_prep_sendmsg(sqe, c->fd, &c->smsghdr, MSG_NOSIGNAL);
    loop::EventLoop::SetOp(sqe, &c->send_op);
    c->sending = true;
    c->send_ref = c;
    c->impl_ref = shared_from_this();
  }

  static void OnSendDone(loop::LoopOp* op, int32_t res) {
    Conn* raw = static_cast<Conn::Op*>(op)->conn;
    std::shared_ptr<Conn> c = std::move(raw->send_ref);
    std::shared_ptr<Impl> keep = raw->impl_ref;
    c->sending = false;
    c->impl->OnSend(c, res);
  }

  void OnSend(const std::shared_ptr<Conn>& c, int32_t res) {
    if (res < 0 || c->dead)
      return EndSend(c, c->dead ? Error(proto::UNAVAILABLE, "connection to " + options.address + " broke")
                                : Error(proto::UNAVAILABLE, "send to " + options.address + ": " + strerror(-res)));
    size_t n = static_cast<size_t>(res);
    while (c->sfirst < c->siov.size() && n >= c->siov[c->sfirst].iov_len) n -= c->siov[c->sfirst++].iov_len;
    if (c->sfirst < c->siov.size()) {  // a short send: the rest goes now
      c->siov[c->sfirst].iov_base = static_cast<uint8_t*>(c->siov[c->sfirst].iov_base) + n;
      c->siov[c->sfirst].iov_len -= n;
      return SubmitSend(c);
    }
    EndSend(c, Status::OK());
  }

  // The send of the batch ended (sent whole, or failed with `st`).
  void EndSend(const std::shared_ptr<Conn>& c, const Status& st) {
    auto batch = std::move(c->batch);
    c->batch.clear();
    if (!st.ok()) Break(c, st);
    for (auto [idx, gen] : batch) {
      Slot& s = slots[idx];
      if (!s.used || s.gen != gen) continue;
      s.in_send = false;
      if (!s.failed.ok()) Complete(idx, s.failed, std::string(), 0);
      else if (s.timed_out) Complete(idx, Error(proto::TIMEOUT, "call to " + options.address + " timed out"), {}, 0);
    }
    if (!c->dead && !closed) Flush();
  }

  // ---- receiving ----

  void ArmRecv(const std::shared_ptr<Conn>& c) {
    if (c->dead || c->recv_ref) return;
    io_uring_sqe* sqe = loop->Sqe();
    if (!sqe) return Break(c, Error(proto::UNAVAILABLE, "the ring refused a receive"));
    if (c->rstate == Conn::kPayload || c->rstate == Conn::kBigMessage) {
      c->rmsghdr = msghdr{};
      c->rmsghdr.msg_iov = c->riov.data();
      c->rmsghdr.msg_iovlen = std::min<size_t>(c->riov.size(), IOV_MAX);
      io_uring_prep_recvmsg(sqe, c->fd, &c->rmsghdr, 0);
    } else {
      if (c->rbegin > 0 && (c->rend - c->rbegin <= 4096 || kRecvBuffer - c->rend < (16 << 10))) {
        std::memmove(c->rbuf.get(), c->rbuf.get() + c->rbegin, c->rend - c->rbegin);
        c->rend -= c->rbegin;
        c->rbegin = 0;
      }
      io_uring_prep_recv(sqe, c->fd, c->rbuf.get() + c->rend, kRecvBuffer - c->rend, 0);
    }
    loop::EventLoop::SetOp(sqe, &c->recv_op);
    c->recv_ref = c;
    c->impl_ref = shared_from_this();
  }

  static void OnRecvDone(loop::LoopOp* op, int32_t res) {
    Conn* raw = static_cast<Conn::Op*>(op)->conn;
    std::shared_ptr<Conn> c = std::move(raw->recv_ref);
    std::shared_ptr<Impl> keep = raw->impl_ref;
    c->impl->OnRecv(c, res);
  }

  void OnRecv(const std::shared_ptr<Conn>& c, int32_t res) {
    if (res <= 0 || c->dead) {
      Status st = Error(proto::UNAVAILABLE, res == 0 ? "connection closed by " + options.address
                                                     : "receive from " + options.address + ": " + strerror(-res));
      if (c->rstate == Conn::kPayload) EndPayload(c, st);
      return Break(c, st);
    }
    size_t n = static_cast<size_t>(res);
    if (c->rstate == Conn::kPayload || c->rstate == Conn::kBigMessage) {
      c->rgot += n;
      ConsumeIov(&c->riov, n);
      if (c->riov.empty()) {
        if (c->rstate == Conn::kPayload) {
          EndPayload(c, Status::OK());
        } else {
          c->rstate = Conn::kFrames;
          if (!OnMessage(c)) return;
        }
      }
    } else {
      c->rend += n;
    }
    if (!ParseBuffered(c)) return;
    ArmRecv(c);
  }

  static void ConsumeIov(std::vector<iovec>* iov, size_t n) {
    size_t i = 0;
    while (i < iov->size() && n >= (*iov)[i].iov_len) n -= (*iov)[i++].iov_len;
    iov->erase(iov->begin(), iov->begin() + i);
    if (!iov->empty() && n) {
      (*iov)[0].iov_base = static_cast<uint8_t*>((*iov)[0].iov_base) + n;
      (*iov)[0].iov_len -= n;
    }
  }

  // Handles whole frames in the buffer. False when the connection broke.
  bool ParseBuffered(const std::shared_ptr<Conn>& c) {
    while (!c->dead) {
      if (c->rstate == Conn::kDiscard) {
        size_t k = std::min<uint64_t>(c->rdiscard, c->rend - c->rbegin);
        c->rbegin += k;
        c->rdiscard -= k;
        if (c->rdiscard > 0) return true;
        c->rstate = Conn::kFrames;
      }
      if (c->rstate != Conn::kFrames) return true;
      size_t avail = c->rend - c->rbegin;
      if (avail < kFrameHeaderSize) return true;
      FrameHeader h;
      Status st = DecodeFrameHeader(c->rbuf.get() + c->rbegin, options.max_frame_bytes, &h);
      if (st.ok() && !h.is_response()) st = Error(proto::PROTOCOL_ERROR, "request frame sent to a client");
      if (!st.ok()) {
        LOG_WARN("closing connection to {}: {}", options.address, st.ToString());
        Break(c, Error(proto::UNAVAILABLE, "bad response from " + options.address + ": " + st.message()));
        return false;
      }
      const uint8_t* p = c->rbuf.get() + c->rbegin + kFrameHeaderSize;
      c->rh = h;
      if (avail - kFrameHeaderSize >= h.message_len) {
        c->rmsg.assign(reinterpret_cast<const char*>(p), h.message_len);
        c->rbegin += kFrameHeaderSize + h.message_len;
        if (!OnMessage(c)) return false;
        continue;
      }
      if (kFrameHeaderSize + h.message_len <= kRecvBuffer) return true;  // fits: wait for the rest
      // A message larger than the buffer: receive it into its own string.
      size_t have = avail - kFrameHeaderSize;
      c->rmsg.assign(h.message_len, '\0');
      std::memcpy(c->rmsg.data(), p, have);
      c->rbegin = c->rend = 0;
      c->riov = {{c->rmsg.data() + have, h.message_len - have}};
      c->rgot = have;
      c->rstate = Conn::kBigMessage;
      return true;
    }
    return false;
  }

  // The message of c->rh is in c->rmsg: finds its call and starts its payload.
  bool OnMessage(const std::shared_ptr<Conn>& c) {
    const FrameHeader& h = c->rh;
    uint32_t idx = static_cast<uint32_t>(h.request_id);
    uint32_t gen = static_cast<uint32_t>(h.request_id >> 32);
    // A call may still be in_send: its batch is being sent, but the server
    // answered, so it had every byte of this call's frame — done with them.
    bool known = idx < slots.size() && slots[idx].used && slots[idx].gen == gen;
    if (!known) {  // timed out (or never ours): drop its payload
      if (h.payload_len) {
        c->rstate = Conn::kDiscard;
        c->rdiscard = h.payload_len;
      }
      return true;
    }
    Slot& s = slots[idx];
    if (h.status != proto::OK) {
      if (h.payload_len) {
        Break(c, Error(proto::UNAVAILABLE, "error response with payload from " + options.address));
        return false;
      }
      proto::ErrorDetail d;
      d.ParseFromString(c->rmsg);
      Complete(idx, Error(static_cast<proto::ErrorCode>(h.status), d.message()), std::string(), 0);
      return true;
    }
    uint64_t room = 0;
    for (const iovec& v : s.sink) room += v.iov_len;
    if (h.payload_len > room) {
      LOG_WARN("closing connection to {}: response payload of {} bytes for a sink of {}", options.address,
               h.payload_len, room);
      Break(c, Error(proto::UNAVAILABLE, "response payload larger than expected from " + options.address));
      return false;
    }
    if (h.payload_len == 0) {
      Complete(idx, Status::OK(), c->rmsg, 0);
      return true;
    }
    // Straight into the sink: first what is buffered, then the rest by recvmsg.
    c->riov.clear();
    uint64_t left = h.payload_len;
    for (const iovec& v : s.sink) {
      if (!left) break;
      size_t k = std::min<uint64_t>(v.iov_len, left);
      c->riov.push_back({v.iov_base, k});
      left -= k;
    }
    size_t buffered = std::min<size_t>(c->rend - c->rbegin, h.payload_len);
    size_t copied = 0;
    for (const iovec& v : c->riov) {
      if (copied == buffered) break;
      size_t k = std::min(v.iov_len, buffered - copied);
      std::memcpy(v.iov_base, c->rbuf.get() + c->rbegin + copied, k);
      copied += k;
    }
    c->rbegin += buffered;
    ConsumeIov(&c->riov, buffered);
    c->rgot = buffered;
    c->rslot = idx;
    if (c->riov.empty()) {
      c->rstate = Conn::kPayload;
      EndPayload(c, Status::OK());
      return true;
    }
    s.in_recv = true;
    c->rstate = Conn::kPayload;
    return true;
  }

  void EndPayload(const std::shared_ptr<Conn>& c, const Status& st) {
    c->rstate = Conn::kFrames;
    Slot& s = slots[c->rslot];
    s.in_recv = false;
    if (!st.ok()) return Complete(c->rslot, st, std::string(), 0);
    if (!s.failed.ok()) return Complete(c->rslot, s.failed, std::string(), 0);
    if (s.timed_out) return Complete(c->rslot, Error(proto::TIMEOUT, "call to " + options.address + " timed out"), {}, 0);
    Complete(c->rslot, Status::OK(), c->rmsg, c->rh.payload_len);
  }

  void Shutdown() {
    closed = true;
    if (conn) Break(conn, Error(proto::CANCELLED, "channel closed"));
    FailQueued(Error(proto::CANCELLED, "channel closed"));
    for (uint32_t idx = 0; idx < slots.size(); ++idx)
      if (slots[idx].used && !slots[idx].in_send && !slots[idx].in_recv)
        Complete(idx, Error(proto::CANCELLED, "channel closed"), std::string(), 0);
  }
};

LoopChannel::LoopChannel(Options options, Transport* transport, loop::EventLoop* loop)
    : impl_(std::make_shared<Impl>(std::move(options), transport, loop)) {}

LoopChannel::~LoopChannel() {
  auto drained = std::make_shared<std::promise<void>>();
  auto done = drained->get_future();
  auto connect = std::make_shared<std::thread>();
  impl_->loop->Post([impl = impl_, drained, connect] {
    // Taken before Shutdown: once the last call completed, the destructor
    // goes on.
    *connect = std::move(impl->connect_thread);
    impl->drained = drained;
    impl->Shutdown();
    if (impl->drained && impl->used == 0) {
      impl->drained.reset();
      drained->set_value();
    }
  });
  done.wait();
  // Joined here, not on the loop: it may still be connecting. It holds a
  // reference to the Impl, never to this object.
  if (connect->joinable()) connect->join();
}

void LoopChannel::Call(proto::Method method, const google::protobuf::Message& request, const iovec* request_payload,
                       int request_iovs, std::vector<iovec> sink, int timeout_ms, Callback done) {
  std::vector<iovec> payload(request_payload, request_payload + request_iovs);
  std::string message = request.SerializeAsString();
  if (impl_->loop->InLoopThread())
    return impl_->Add(method, std::move(message), std::move(payload), std::move(sink), timeout_ms, std::move(done));
  // std::function needs a copyable closure; these are copyable (vectors, strings).
  impl_->loop->Post([impl = impl_, method, message = std::move(message), payload = std::move(payload),
                     sink = std::move(sink), timeout_ms, done = std::move(done)]() mutable {
    impl->Add(method, std::move(message), std::move(payload), std::move(sink), timeout_ms, std::move(done));
  });
}

void LoopChannel::CallOnLoop(proto::Method method, std::string message, std::vector<iovec> payload,
                             std::vector<iovec> sink, int timeout_ms, Callback done) {
  impl_->Add(method, std::move(message), std::move(payload), std::move(sink), timeout_ms, std::move(done));
}

const std::string& LoopChannel::address() const { return impl_->options.address; }
loop::EventLoop* LoopChannel::loop() const { return impl_->loop; }

}  // namespace shoal::rpc
