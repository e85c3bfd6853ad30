#include "common/rpc/inproc_transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <vector>

#include "common/rpc/frame.h"

namespace shoal::rpc {

// A listening name: a queue of server-side connection ends.
struct InprocTransport::Endpoint {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Connection>> pending;
  bool closed = false;
};

namespace {

class InprocListener : public Listener {
 public:
  InprocListener(std::shared_ptr<InprocTransport::Endpoint> ep, std::string address, std::function<void()> on_close)
      : ep_(std::move(ep)), address_(std::move(address)), on_close_(std::move(on_close)) {}
  ~InprocListener() override { Close(); }

  Result<std::unique_ptr<Connection>> Accept() override {
    std::unique_lock<std::mutex> l(ep_->mu);
    ep_->cv.wait(l, [&] { return ep_->closed || !ep_->pending.empty(); });
    if (ep_->closed) return Error(proto::CANCELLED, "listener closed");
    auto c = std::move(ep_->pending.front());
    ep_->pending.pop_front();
    return c;
  }
  void Close() override {
    {
      std::lock_guard<std::mutex> l(ep_->mu);
      if (ep_->closed) return;
      ep_->closed = true;
      ep_->pending.clear();
    }
    ep_->cv.notify_all();
    on_close_();
  }
  std::string Address() const override { return address_; }

 private:
  std::shared_ptr<InprocTransport::Endpoint> ep_;
  std::string address_;
  std::function<void()> on_close_;
};

// The client end: applies the faults of its server address to every frame it
// writes. Frames are whole in one WriteV (the RPC layer sends them so).
}  // namespace

// Proxies of connections handed over to event loops (see ReleaseFd below):
// counted, so that the transport outlives them.
struct InprocTransport::Proxies {
  std::mutex mu;
  std::condition_variable cv;
  int live = 0;          // proxy threads running
  std::set<int> fds;     // their loop-side sockets, shut down when the transport goes
};

namespace {

class FaultyConnection : public Connection {
 public:
  FaultyConnection(std::unique_ptr<Connection> inner, Faults* faults,
                   std::shared_ptr<InprocTransport::Proxies> proxies)
      : inner_(std::move(inner)), faults_(faults), proxies_(std::move(proxies)) {}
  ~FaultyConnection() override {
    {
      std::lock_guard<std::mutex> l(hold_mu_);
      closing_ = true;
    }
    hold_cv_.notify_all();
    for (auto& t : holders_) t.join();
  }

  Status WriteV(const iovec* iov, int n) override {
    if (TakeOne(faults_->hold_next_frames)) {
      std::string frame;
      for (int i = 0; i < n; ++i) frame.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      Hold(std::move(frame));
      return Status::OK();
    }
    std::lock_guard<std::mutex> l(write_mu_);
    return WriteLocked(iov, n);
  }

  Status WriteLocked(const iovec* iov, int n) {
    if (faults_->fail_writes) {
      inner_->Shutdown();
      return Error(proto::UNAVAILABLE, "injected write failure");
    }
    if (int d = faults_->delay_ms.load(); d > 0) std::this_thread::sleep_for(std::chrono::milliseconds(d));
    if (TakeOne(faults_->drop_next_frames)) return Status::OK();
    if (n >= 3 && TakeOne(faults_->corrupt_next_frames)) {
      // Flip a byte of the payload (iovecs after header and message).
      std::vector<iovec> copy(iov, iov + n);
      for (int i = n - 1; i >= 2; --i) {
        if (copy[i].iov_len == 0) continue;
        scratch_.assign(static_cast<char*>(copy[i].iov_base), copy[i].iov_len);
        scratch_[scratch_.size() / 2] ^= 0x20;
        copy[i].iov_base = scratch_.data();
        break;
      }
      return inner_->WriteV(copy.data(), n);
    }
    // The server gets the frame and answers; the first bytes of the answer
    // to reach this end break the connection instead (see ReadSome). Armed
    // before the write: the answer may be back before WriteV returns.
    bool lose = TakeOne(faults_->lose_reply_of_next_frames);
    if (lose) lose_next_read_ = true;
    Status st = inner_->WriteV(iov, n);
    if (!st.ok() && lose) lose_next_read_ = false;
    return st;
  }
  Status ReadFullV(const iovec* iov, int n) override {
    Status st = inner_->ReadFullV(iov, n);
    if (st.ok() && lose_next_read_.exchange(false)) return LoseReply();
    return st;
  }
  Result<size_t> ReadSome(void* buf, size_t len) override {
    auto r = inner_->ReadSome(buf, len);
    if (r.ok() && *r > 0 && lose_next_read_.exchange(false)) return LoseReply();
    return r;
  }
  void SetTimeouts(int r, int w) override { inner_->SetTimeouts(r, w); }
  void Shutdown() override { inner_->Shutdown(); }
  std::string PeerName() const override { return inner_->PeerName(); }

  // An event loop drives sockets itself, so the faults cannot sit in WriteV
  // any more: the loop gets one end of a new socketpair, and two threads
  // stand between it and the connection — frames from the loop go through
  // this object's faults (WriteV), bytes from the server pass unchanged.
  int ReleaseFd() override {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    std::shared_ptr<FaultyConnection> conn(new FaultyConnection(std::move(inner_), faults_, proxies_));
    std::shared_ptr<Connection> local(NewStreamConnection(sv[1], "loop"));
    {
      std::lock_guard<std::mutex> l(proxies_->mu);
      proxies_->live += 2;
      proxies_->fds.insert(sv[1]);
    }
    // Each thread lets go of the connection before it counts itself out, so
    // the last one out has destroyed it by then (the transport waits for that).
    auto finish = [proxies = proxies_, fd = sv[1]](std::shared_ptr<FaultyConnection>& c,
                                                   std::shared_ptr<Connection>& l) {
      c->Shutdown();
      l->Shutdown();
      c.reset();
      l.reset();
      std::lock_guard<std::mutex> g(proxies->mu);
      proxies->fds.erase(fd);
      if (--proxies->live == 0) proxies->cv.notify_all();
    };
    int started = 0;
    try {
      std::thread([conn, local, finish]() mutable {
        for (;;) {  // loop -> server, one frame at a time through the faults
          uint8_t header[kFrameHeaderSize];
          FrameHeader h;
          if (!local->ReadFull(header, sizeof(header)).ok()) break;
          if (!DecodeFrameHeader(header, ~0ull, &h).ok()) break;
          std::string body(size_t{h.message_len} + h.payload_len, '\0');
          if (!body.empty() && !local->ReadFull(body.data(), body.size()).ok()) break;
          iovec v[3] = {{header, sizeof(header)}, {body.data(), h.message_len}, {body.data() + h.message_len,
                                                                                  h.payload_len}};
          if (!conn->WriteV(v, 3).ok()) break;
        }
        finish(conn, local);
      }).detach();
      ++started;
      std::thread([conn, local, finish]() mutable {
        std::vector<uint8_t> buf(64 << 10);
        for (;;) {  // server -> loop, unchanged
          auto n = conn->ReadSome(buf.data(), buf.size());
          if (!n.ok()) break;
          iovec v{buf.data(), *n};
          if (!local->WriteV(&v, 1).ok()) break;
        }
        finish(conn, local);
      }).detach();
    } catch (const std::system_error&) {
      {
        std::lock_guard<std::mutex> g(proxies_->mu);
        proxies_->live -= 2 - started;
      }
      ::close(sv[0]);
      return -1;  // (a thread that did start ends when its sockets shut down)
    }
    return sv[0];
  }

 private:
  Status LoseReply() {
    inner_->Shutdown();
    return Error(proto::UNAVAILABLE, "injected: connection lost with a reply on its way");
  }
  static bool TakeOne(std::atomic<int>& counter) {
    int v = counter.load();
    while (v > 0)
      if (counter.compare_exchange_weak(v, v - 1)) return true;
    return false;
  }
  void Hold(std::string frame) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(faults_->hold_ms.load());
    std::lock_guard<std::mutex> l(hold_mu_);
    holders_.emplace_back([this, until, frame = std::move(frame)] {
      {
        std::unique_lock<std::mutex> hl(hold_mu_);
        if (hold_cv_.wait_until(hl, until, [this] { return closing_; })) return;  // closed first: lost
      }
      std::lock_guard<std::mutex> wl(write_mu_);
      iovec v{const_cast<char*>(frame.data()), frame.size()};
      if (inner_->WriteV(&v, 1).ok()) faults_->held_delivered++;
    });
  }

  std::unique_ptr<Connection> inner_;
  Faults* faults_;
  std::shared_ptr<InprocTransport::Proxies> proxies_;
  std::string scratch_;
  std::atomic<bool> lose_next_read_{false};
  std::mutex write_mu_;  // whole frames: a held frame never lands inside another
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  bool closing_ = false;
  std::vector<std::thread> holders_;
};

}  // namespace

InprocTransport::InprocTransport() : proxies_(std::make_shared<Proxies>()) {}

InprocTransport::~InprocTransport() {
  std::unique_lock<std::mutex> l(proxies_->mu);
  for (int fd : proxies_->fds) ::shutdown(fd, SHUT_RDWR);
  proxies_->cv.wait(l, [&] { return proxies_->live == 0; });
}

Faults& InprocTransport::FaultsFor(const std::string& address) {
  std::lock_guard<std::mutex> l(mu_);
  auto& f = faults_[address];
  if (!f) f = std::make_unique<Faults>();
  return *f;
}

Result<std::unique_ptr<Listener>> InprocTransport::Listen(const std::string& address) {
  std::lock_guard<std::mutex> l(mu_);
  if (endpoints_.count(address)) return Error(proto::ALREADY_EXISTS, "inproc address " + address + " in use");
  auto ep = std::make_shared<Endpoint>();
  endpoints_[address] = ep;
  return std::unique_ptr<Listener>(new InprocListener(ep, address, [this, address] {
    std::lock_guard<std::mutex> l2(mu_);
    endpoints_.erase(address);
  }));
}

Result<std::unique_ptr<Connection>> InprocTransport::Connect(const std::string& address, int) {
  Faults& faults = FaultsFor(address);
  if (faults.refuse_connect) return Error(proto::UNAVAILABLE, "injected: connect to " + address + " refused");
  std::shared_ptr<Endpoint> ep;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = endpoints_.find(address);
    if (it == endpoints_.end()) return Error(proto::UNAVAILABLE, "connect to " + address + ": nobody listens");
    ep = it->second;
  }
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return Status::FromErrno(errno, "socketpair");
  auto server_end = NewStreamConnection(fds[1], "inproc-client");
  {
    std::lock_guard<std::mutex> l(ep->mu);
    if (ep->closed) {
      ::close(fds[0]);
      return Error(proto::UNAVAILABLE, "connect to " + address + ": listener closed");
    }
    ep->pending.push_back(std::move(server_end));
  }
  ep->cv.notify_all();
  return std::unique_ptr<Connection>(new FaultyConnection(NewStreamConnection(fds[0], address), &faults, proxies_));
}

}  // namespace shoal::rpc
