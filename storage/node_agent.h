// NodeAgent: keeps a storage node known to meta. Registers its targets (and
// registers again whenever meta answers a heartbeat with `reregister`), then
// heartbeats every interval with the node's counters and free space. Every
// RPC has a deadline; failures are logged once per outage and retried on the
// next tick.
//
// Each target registers with its stamp (cluster UUID, incarnation), so that
// meta refuses a foreign disk and notices a re-formatted one. Before it
// serves, the server asks Identify() (meta checks and records the stamps but
// does not list the node online); Start() registers for real, then heartbeats.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/rpc/client.h"
#include "proto/cluster.pb.h"

namespace shoal::storage {

struct TargetConfig {
  uint32_t id;
  std::string path;
};

class NodeAgent {
 public:
  NodeAgent(rpc::RpcChannel* meta, uint32_t node_id, std::string address, std::vector<TargetConfig> targets,
            std::function<proto::NodeStats()> stats, int64_t interval_ms, const Clock* clock = RealClock());
  ~NodeAgent();
  // The stamp a target registers with (an empty UUID: being formatted).
  void SetTargetStamp(uint32_t target_id, std::string cluster_uuid, uint64_t incarnation);
  // One identity-only registration, now (RegisterReq.before_serving).
  Result<proto::RegisterRsp> Identify();
  // Registers (and re-registers when meta asks), then heartbeats.
  void Start();

 private:
  struct Stamp {
    std::string cluster_uuid;
    uint64_t incarnation = 0;
  };
  void Loop();
  Result<proto::RegisterRsp> Register(bool before_serving);
  std::vector<proto::TargetInfo> TargetInfos();

  rpc::RpcChannel* meta_;
  uint32_t node_id_;
  std::string address_;
  std::vector<TargetConfig> targets_;
  std::function<proto::NodeStats()> stats_;
  int64_t interval_ms_;
  const Clock* clock_;  // the heartbeat interval
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<uint32_t, Stamp> stamps_;  // by target id
  std::thread thread_;
};

// Parses "ID:PATH" target specs. INVALID_ARGUMENT on a malformed one.
Result<std::vector<TargetConfig>> ParseTargets(const std::vector<std::string>& specs);

}  // namespace shoal::storage
