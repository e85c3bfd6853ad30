// The transport seam: byte-stream connections that carry frames.
//
// A Connection is used by one reader thread (ReadFull) and by writers that
// serialize among themselves (the RPC layer holds a send mutex); Shutdown()
// may be called from any thread and makes blocked reads and writes fail.
//
// TCP connections (both ends) carry SO_KEEPALIVE with the kKeepalive* settings
// and TCP_USER_TIMEOUT, so a peer that vanished without a FIN or RST (power
// loss, a cut cable) breaks the connection within about a minute instead of
// holding a reader and its buffers forever.
//
// Bulk data on TCP travels as frame payload read straight into the caller's
// buffer (see rpc/client.h). A one-sided backend (RDMA) plugs in below the
// RPC layer through the same request/response flow.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"

namespace shoal::rpc {

constexpr int kKeepaliveIdleSec = 30;      // idle time before the first probe
constexpr int kKeepaliveIntervalSec = 10;  // between probes
constexpr int kKeepaliveProbes = 3;        // unanswered probes that break the connection
constexpr int kTcpUserTimeoutMs = 60000;   // unacknowledged sent data that breaks the connection

class Connection {
 public:
  virtual ~Connection() = default;
  // Writes every byte of iov[0..n). UNAVAILABLE when the peer is gone,
  // TIMEOUT when the send timeout passes.
  virtual Status WriteV(const iovec* iov, int n) = 0;
  // Writes what the transport accepts without blocking, a prefix of
  // iov[0..n), and returns its length (0 when nothing fits now). Errors as
  // WriteV. The default blocks until everything is written.
  virtual Result<size_t> TryWriteV(const iovec* iov, int n) {
    size_t total = 0;
    for (int i = 0; i < n; ++i) total += iov[i].iov_len;
    RETURN_IF_ERROR(WriteV(iov, n));
    return total;
  }
  // Reads exactly the bytes of iov[0..n). UNAVAILABLE on EOF or reset.
  virtual Status ReadFullV(const iovec* iov, int n) = 0;
  // Reads what is available, 1 to `len` bytes (blocking until at least one).
  virtual Result<size_t> ReadSome(void* buf, size_t len) = 0;
  Status ReadFull(void* buf, size_t len) {
    iovec v{buf, len};
    return ReadFullV(&v, 1);
  }
  // Timeouts for blocking reads / writes; 0 disables.
  virtual void SetTimeouts(int read_ms, int write_ms) = 0;
  virtual void Shutdown() = 0;
  virtual std::string PeerName() const = 0;
  // Hands the socket over to the caller (an event loop that drives it from
  // now on) and leaves this object empty. -1 when the backend has no socket.
  virtual int ReleaseFd() { return -1; }
  // The socket descriptor, for inspection (tests); -1 when there is none.
  virtual int NativeHandle() const { return -1; }
};

class Listener {
 public:
  virtual ~Listener() = default;
  // Blocks for the next connection; CANCELLED after Close().
  virtual Result<std::unique_ptr<Connection>> Accept() = 0;
  virtual void Close() = 0;
  virtual std::string Address() const = 0;  // host:port actually bound
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<std::unique_ptr<Connection>> Connect(const std::string& address, int timeout_ms) = 0;
  virtual Result<std::unique_ptr<Listener>> Listen(const std::string& address) = 0;
  virtual std::string Name() const = 0;
};

// TCP over IPv4 ("host:port"; port 0 picks a free port). Process-wide singleton.
Transport* TcpTransport();

// Wraps a connected stream socket; takes ownership of `fd`.
std::unique_ptr<Connection> NewStreamConnection(int fd, std::string peer);

// Splits "host:port". INVALID_ARGUMENT when malformed.
Status ParseHostPort(const std::string& address, std::string* host, uint16_t* port);

}  // namespace shoal::rpc
