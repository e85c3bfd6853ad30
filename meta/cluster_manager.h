// ClusterManager: node membership, targets, chains and their states, kept in
// memory and persisted in the Kv's cluster column family on every membership
// or state change (heartbeat stats are memory-only).
//
// Storage servers Register() their targets and Heartbeat(). A node silent for
// longer than the heartbeat timeout is marked offline by CheckLiveness(); its
// targets go offline and the version of every chain holding them, and of the
// table, increases. Replication factor is 1 here: each new target gets its
// own chain. Thread-safe.
#pragma once

#include <mutex>
#include <vector>

#include "common/clock.h"
#include "meta/kv.h"
#include "proto/cluster.pb.h"

namespace shoal::meta {

class ClusterManager {
 public:
  ClusterManager(Kv* kv, const Clock* clock, std::string cluster_id, int64_t heartbeat_timeout_ms);

  Status Load();
  // INVALID_ARGUMENT when a target id is claimed by another node.
  Result<uint64_t> Register(const proto::RegisterReq& req);
  proto::HeartbeatRsp Heartbeat(const proto::HeartbeatReq& req);
  Status CheckLiveness();

  proto::ClusterTable Table() const;
  uint64_t version() const;
  // Chains new files may be placed on: those with a serving target (all
  // chains when none serves), sorted by id.
  std::vector<uint32_t> PlacementChains() const;
  void Capacity(uint64_t* total, uint64_t* free) const;

 private:
  Status Persist();  // requires mu_
  proto::Node* FindNode(uint32_t id);
  proto::Target* FindTarget(uint32_t id);
  void SetTargetState(proto::Target* t, proto::TargetState s);  // bumps chain versions

  Kv* kv_;
  const Clock* clock_;
  int64_t heartbeat_timeout_ms_;
  mutable std::mutex mu_;
  proto::ClusterTable table_;
};

}  // namespace shoal::meta
