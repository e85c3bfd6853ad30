// TCP backend of the transport seam: blocking sockets, one reader per
// connection, TCP_NODELAY, large socket buffers for bulk payload, keepalive
// and TCP_USER_TIMEOUT on both ends (see transport.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/rpc/transport.h"

namespace shoal::rpc {

Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return Error(proto::INVALID_ARGUMENT, "address '" + address + "' is not host:port");
  *host = address.substr(0, colon);
  char* end = nullptr;
  unsigned long p = strtoul(address.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p > 65535) return Error(proto::INVALID_ARGUMENT, "bad port in '" + address + "'");
  *port = static_cast<uint16_t>(p);
  return Status::OK();
}

namespace {

Status ResolveIpv4(const std::string& address, sockaddr_in* sa) {
  std::string host;
  uint16_t port;
  RETURN_IF_ERROR(ParseHostPort(address, &host, &port));
  std::memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) == 1) return Status::OK();
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res)
    return Error(proto::INVALID_ARGUMENT, "cannot resolve '" + host + "'");
  sa->sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return Status::OK();
}

std::string SockName(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

void TuneSocket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

// Dead-peer detection for TCP only (a socketpair has no such options).
void EnableKeepalive(int fd) {
  int one = 1, idle = kKeepaliveIdleSec, intvl = kKeepaliveIntervalSec, cnt = kKeepaliveProbes;
  unsigned int user_timeout = kTcpUserTimeoutMs;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

// A private copy of an iovec array, consumed from the front as bytes move.
class IovCursor {
 public:
  IovCursor(const iovec* iov, int n) : n_(n) {
    if (n > kInline) {
      heap_.reset(new iovec[n]);
      v_ = heap_.get();
    }
    std::memcpy(v_, iov, sizeof(iovec) * n);
    Consume(0);
  }
  bool done() const { return idx_ == n_; }
  iovec* iov() { return v_ + idx_; }
  int count() const { return std::min(n_ - idx_, IOV_MAX); }
  void Consume(size_t bytes) {
    while (idx_ < n_ && bytes >= v_[idx_].iov_len) bytes -= v_[idx_++].iov_len;
    if (idx_ < n_) {
      v_[idx_].iov_base = static_cast<char*>(v_[idx_].iov_base) + bytes;
      v_[idx_].iov_len -= bytes;
    }
  }

 private:
  static constexpr int kInline = 16;
  iovec inline_[kInline];
  std::unique_ptr<iovec[]> heap_;
  iovec* v_ = inline_;
  int n_;
  int idx_ = 0;
};

// A connected stream socket (TCP, or a socketpair for the in-process transport).
class StreamConnection : public Connection {
 public:
  StreamConnection(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) { TuneSocket(fd_); }
  ~StreamConnection() override {
    if (fd_ >= 0) ::close(fd_);
  }
  int ReleaseFd() override { return std::exchange(fd_, -1); }

  Status WriteV(const iovec* iov, int n) override {
    for (IovCursor cur(iov, n); !cur.done();) {
      msghdr msg{};
      msg.msg_iov = cur.iov();
      msg.msg_iovlen = cur.count();
      ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Error(proto::TIMEOUT, "send to " + peer_ + " timed out");
        return Status::FromErrno(errno, "send to " + peer_);
      }
      cur.Consume(static_cast<size_t>(w));
    }
    return Status::OK();
  }

  Result<size_t> TryWriteV(const iovec* iov, int n) override {
    size_t done = 0;
    for (IovCursor cur(iov, n); !cur.done();) {
      msghdr msg{};
      msg.msg_iov = cur.iov();
      msg.msg_iovlen = cur.count();
      ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return Status::FromErrno(errno, "send to " + peer_);
      }
      cur.Consume(static_cast<size_t>(w));
      done += static_cast<size_t>(w);
    }
    return done;
  }

  Status ReadFullV(const iovec* iov, int n) override {
    for (IovCursor cur(iov, n); !cur.done();) {
      ssize_t r = ::readv(fd_, cur.iov(), cur.count());
      if (r == 0) return Error(proto::UNAVAILABLE, "connection closed by " + peer_);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Error(proto::TIMEOUT, "read from " + peer_ + " timed out");
        return Status::FromErrno(errno, "read from " + peer_);
      }
      cur.Consume(static_cast<size_t>(r));
    }
    return Status::OK();
  }

  Result<size_t> ReadSome(void* buf, size_t len) override {
    for (;;) {
      ssize_t r = ::read(fd_, buf, len);
      if (r > 0) return static_cast<size_t>(r);
      if (r == 0) return Error(proto::UNAVAILABLE, "connection closed by " + peer_);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Error(proto::TIMEOUT, "read from " + peer_ + " timed out");
      return Status::FromErrno(errno, "read from " + peer_);
    }
  }

  void SetTimeouts(int read_ms, int write_ms) override {
    timeval rt{read_ms / 1000, (read_ms % 1000) * 1000};
    timeval wt{write_ms / 1000, (write_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &wt, sizeof(wt));
  }

  void Shutdown() override { ::shutdown(fd_, SHUT_RDWR); }
  std::string PeerName() const override { return peer_; }
  int NativeHandle() const override { return fd_; }

 private:
  int fd_;
  std::string peer_;
};

class TcpListener : public Listener {
 public:
  TcpListener(int fd, std::string address) : fd_(fd), address_(std::move(address)) {}
  ~TcpListener() override {
    Close();
    ::close(fd_);
  }

  Result<std::unique_ptr<Connection>> Accept() override {
    for (;;) {
      if (closed_) return Error(proto::CANCELLED, "listener closed");
      sockaddr_in sa{};
      socklen_t len = sizeof(sa);
      int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
      if (fd >= 0) {
        EnableKeepalive(fd);
        return std::unique_ptr<Connection>(new StreamConnection(fd, SockName(sa)));
      }
      if (closed_) return Error(proto::CANCELLED, "listener closed");
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        ::poll(nullptr, 0, 10);  // out of descriptors: back off instead of spinning
        continue;
      }
      return Status::FromErrno(errno, "accept on " + address_);
    }
  }

  void Close() override {
    if (!closed_.exchange(true)) ::shutdown(fd_, SHUT_RDWR);
  }
  std::string Address() const override { return address_; }

 private:
  int fd_;
  std::string address_;
  std::atomic<bool> closed_{false};
};

class Tcp : public Transport {
 public:
  Result<std::unique_ptr<Connection>> Connect(const std::string& address, int timeout_ms) override {
    sockaddr_in sa;
    RETURN_IF_ERROR(ResolveIpv4(address, &sa));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return Status::FromErrno(errno, "socket");
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, timeout_ms);
      if (rc == 0) {
        ::close(fd);
        return Error(proto::UNAVAILABLE, "connect to " + address + " timed out");
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        ::close(fd);
        return Error(proto::UNAVAILABLE, "connect to " + address + ": " + std::strerror(err));
      }
    } else if (rc < 0) {
      int err = errno;
      ::close(fd);
      return Error(proto::UNAVAILABLE, "connect to " + address + ": " + std::strerror(err));
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    EnableKeepalive(fd);
    return std::unique_ptr<Connection>(new StreamConnection(fd, address));
  }

  Result<std::unique_ptr<Listener>> Listen(const std::string& address) override {
    sockaddr_in sa;
    RETURN_IF_ERROR(ResolveIpv4(address, &sa));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::FromErrno(errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0 || ::listen(fd, 512) < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "listen on " + address);
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    return std::unique_ptr<Listener>(new TcpListener(fd, SockName(sa)));
  }

  std::string Name() const override { return "tcp"; }
};

}  // namespace

std::unique_ptr<Connection> NewStreamConnection(int fd, std::string peer) {
  return std::make_unique<StreamConnection>(fd, std::move(peer));
}

Transport* TcpTransport() {
  static Tcp tcp;
  return &tcp;
}

}  // namespace shoal::rpc
