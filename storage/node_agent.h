// NodeAgent: keeps a storage node known to meta. Registers its targets (and
// registers again whenever meta answers a heartbeat with `reregister`), then
// heartbeats every interval with the node's counters and free space. Every
// RPC has a deadline; failures are logged once per outage and retried on the
// next tick.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

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
            std::function<proto::NodeStats()> stats, int64_t interval_ms);
  ~NodeAgent();
  void Start();

 private:
  void Loop();
  std::vector<proto::TargetInfo> TargetInfos() const;

  rpc::RpcChannel* meta_;
  uint32_t node_id_;
  std::string address_;
  std::vector<TargetConfig> targets_;
  std::function<proto::NodeStats()> stats_;
  int64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Parses "ID:PATH" target specs. INVALID_ARGUMENT on a malformed one.
Result<std::vector<TargetConfig>> ParseTargets(const std::vector<std::string>& specs);
// Stamps a target directory with its id on first use; refuses a directory
// stamped with another id (a swapped disk).
Status ClaimTargetDir(const TargetConfig& t);

}  // namespace shoal::storage
