// ClusterManager: node membership, targets, chains and their states, kept in
// memory and persisted in the Kv's cluster column family on every membership
// or state change (heartbeat stats are memory-only).
//
// Storage servers Register() their targets and Heartbeat(). A node silent for
// longer than the heartbeat timeout is marked offline by CheckLiveness(); its
// targets go offline and the version of every chain holding them, and of the
// table, increases. Replication factor is 1 here: each new target gets its
// own chain. Thread-safe.
//
// Disk identity: a target registers with its stamp (cluster UUID,
// incarnation). A stamp of another cluster is refused. Meta remembers each
// target's incarnation; when a known target comes back with a new one (its
// disk was formatted or swapped), every inode that exists may have lost
// chunks there, so the answer carries `lost_below_inode` = the next inode
// number, remembered with the incarnation and repeated on every later
// registration of it. A server asks this (before_serving) before it listens,
// so that it is never listed as online while it cannot serve.
#pragma once

#include <functional>
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
  // The cluster's UUID and where to read the next inode number (called
  // without this manager's lock held). Set once, before Register is served;
  // without it targets' stamps are not checked and nothing is reported lost.
  void SetIdentity(std::string cluster_uuid, std::function<uint64_t()> next_inode);
  // INVALID_ARGUMENT when a target id is claimed by another node or a
  // target is stamped for another cluster. With `before_serving` only the
  // identities are checked and recorded; the node's state is left alone.
  Result<proto::RegisterRsp> Register(const proto::RegisterReq& req);
  proto::HeartbeatRsp Heartbeat(const proto::HeartbeatReq& req);
  Status CheckLiveness();

  proto::ClusterTable Table() const;
  uint64_t version() const;
  // Chains new files may be placed on: those with a serving target (all
  // chains when none serves), sorted by id.
  std::vector<uint32_t> PlacementChains() const;
  void Capacity(uint64_t* total, uint64_t* free) const;
  // The Kv it persists to (shared with the MetaStore; meta_service.cc's group commit).
  Kv* kv() const { return kv_; }

 private:
  Status Persist();  // requires mu_
  proto::Node* FindNode(uint32_t id);
  proto::Target* FindTarget(uint32_t id);
  void SetTargetState(proto::Target* t, proto::TargetState s);  // bumps chain versions
  // Records the incarnation a target registered with; returns its lost_below_inode.
  uint64_t NoteIncarnation(proto::Target* t, bool is_new, uint64_t incarnation, uint64_t next_inode);

  Kv* kv_;
  const Clock* clock_;
  int64_t heartbeat_timeout_ms_;
  std::string cluster_uuid_;
  std::function<uint64_t()> next_inode_;
  mutable std::mutex mu_;
  proto::ClusterTable table_;
};

}  // namespace shoal::meta
