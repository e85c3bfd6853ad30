// ChannelPool: one RpcChannel per server address, created on first use and
// kept for the life of the pool. Thread-safe; returned pointers stay valid
// until the pool is destroyed. Every channel's call deadlines run on `clock`.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/rpc/client.h"

namespace shoal::rpc {

class ChannelPool {
 public:
  ChannelPool(Credentials creds, Transport* transport, uint64_t max_frame_bytes = 64ull << 20,
              const Clock* clock = RealClock())
      : creds_(std::move(creds)), transport_(transport), max_frame_bytes_(max_frame_bytes), clock_(clock) {}

  RpcChannel* Get(const std::string& address) {
    std::lock_guard<std::mutex> l(mu_);
    auto& ch = channels_[address];
    if (!ch) {
      RpcChannel::Options o;
      o.address = address;
      o.creds = creds_;
      o.max_frame_bytes = max_frame_bytes_;
      o.clock = clock_;
      ch = std::make_unique<RpcChannel>(o, transport_);
    }
    return ch.get();
  }

 private:
  Credentials creds_;
  Transport* transport_;
  uint64_t max_frame_bytes_;
  const Clock* clock_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<RpcChannel>> channels_;
};

}  // namespace shoal::rpc
