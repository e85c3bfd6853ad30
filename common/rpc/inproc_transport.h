// The in-process transport, for tests: the same stream semantics as TCP
// (each connection is a socketpair), no ports, and fault injection per
// server address — what a flaky network or a sick server does to a client.
//
// Faults apply to bytes a client sends towards `address` (requests), checked
// on every frame, so they can be switched on and off while calls are in flight
// — also on a connection handed to an event loop (ReleaseFd), through a
// proxy. The transport must outlive the connections made with it; its
// destructor ends the proxies.
// Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/rpc/transport.h"

namespace shoal::rpc {

struct Faults {
  std::atomic<int> drop_next_frames{0};  // the next N frames vanish (the peer never answers them)
  std::atomic<int> delay_ms{0};          // every frame waits this long before it is sent
  std::atomic<bool> refuse_connect{false};  // Connect() fails with UNAVAILABLE
  std::atomic<bool> fail_writes{false};     // writes fail with UNAVAILABLE (connection breaks)
  std::atomic<int> corrupt_next_frames{0};  // the next N frames get one payload byte flipped
  // The next N frames are held back for hold_ms and then sent, after frames
  // written in the meantime: a request that wanders while its retry overtakes
  // it. Dropped if the connection closes first. held_delivered counts sends.
  std::atomic<int> hold_next_frames{0};
  std::atomic<int> hold_ms{0};
  std::atomic<int> held_delivered{0};
  // The next N frames reach the server, and the connection breaks when the
  // reply arrives, before the client reads it: a reply lost on the way. The
  // server did the work; the client sees the connection fail (UNAVAILABLE).
  // (For connections read by one call at a time, e.g. metadata channels: the
  // first bytes to arrive after the frame are taken to be its reply.)
  std::atomic<int> lose_reply_of_next_frames{0};
};

class InprocTransport : public Transport {
 public:
  InprocTransport();
  ~InprocTransport() override;

  Result<std::unique_ptr<Connection>> Connect(const std::string& address, int timeout_ms) override;
  // Any name works as an address; "name:0" is kept as given.
  Result<std::unique_ptr<Listener>> Listen(const std::string& address) override;
  std::string Name() const override { return "inproc"; }

  // The fault switches for connections towards `address` (created on first use).
  Faults& FaultsFor(const std::string& address);

  struct Endpoint;  // a listening name (defined in the .cc)
  struct Proxies;   // connections handed to event loops (defined in the .cc)

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Endpoint>> endpoints_;
  std::map<std::string, std::unique_ptr<Faults>> faults_;
  std::shared_ptr<Proxies> proxies_;
};

}  // namespace shoal::rpc
