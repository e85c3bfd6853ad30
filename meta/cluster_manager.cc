#include "meta/cluster_manager.h"

#include <algorithm>

#include "common/log.h"

namespace shoal::meta {

namespace {
const char kTableKey[] = "cluster_table";
}

ClusterManager::ClusterManager(Kv* kv, const Clock* clock, std::string cluster_id, int64_t heartbeat_timeout_ms)
    : kv_(kv), clock_(clock), heartbeat_timeout_ms_(heartbeat_timeout_ms) {
  table_.set_cluster_id(std::move(cluster_id));
  table_.set_version(1);
}

Status ClusterManager::Load() {
  std::lock_guard<std::mutex> l(mu_);
  auto raw = kv_->Get(Cf::kCluster, kTableKey);
  if (!raw.ok()) return raw.status().code() == proto::NOT_FOUND ? Status::OK() : raw.status();
  proto::ClusterTable t;
  if (!t.ParseFromString(*raw)) return Error(proto::INTERNAL, "corrupt cluster table");
  std::string id = table_.cluster_id();
  table_ = std::move(t);
  table_.set_cluster_id(id);
  // A restarted meta gives every node a fresh grace period before judging it.
  for (auto& n : *table_.mutable_nodes()) n.set_last_heartbeat_ms(clock_->NowMs());
  return Status::OK();
}

Status ClusterManager::Persist() {
  proto::ClusterTable t = table_;
  for (auto& n : *t.mutable_nodes()) n.clear_stats();
  KvBatch b;
  b.Put(Cf::kCluster, kTableKey, t.SerializeAsString());
  return kv_->Write(b);
}

proto::Node* ClusterManager::FindNode(uint32_t id) {
  for (auto& n : *table_.mutable_nodes())
    if (n.node_id() == id) return &n;
  return nullptr;
}

proto::Target* ClusterManager::FindTarget(uint32_t id) {
  for (auto& t : *table_.mutable_targets())
    if (t.target_id() == id) return &t;
  return nullptr;
}

void ClusterManager::SetTargetState(proto::Target* t, proto::TargetState s) {
  if (t->state() == s) return;
  t->set_state(s);
  for (auto& c : *table_.mutable_chains())
    if (std::find(c.targets().begin(), c.targets().end(), t->target_id()) != c.targets().end())
      c.set_version(c.version() + 1);
}

void ClusterManager::SetIdentity(std::string cluster_uuid, std::function<uint64_t()> next_inode) {
  std::lock_guard<std::mutex> l(mu_);
  cluster_uuid_ = std::move(cluster_uuid);
  next_inode_ = std::move(next_inode);
}

uint64_t ClusterManager::NoteIncarnation(proto::Target* t, bool is_new, uint64_t incarnation, uint64_t next_inode) {
  if (incarnation == 0 || incarnation == t->incarnation()) return t->lost_below_inode();
  // A target id never seen holds no file's chunks: files are only placed on
  // known targets. A known one with another disk may have lost any inode's.
  if (!is_new) {
    t->set_lost_below_inode(std::max(t->lost_below_inode(), next_inode));
    LOG_WARN("target {} on node {} comes back as a new disk (incarnation {:016x}, was {:016x}): chunks of inodes "
             "below {} on it are lost",
             t->target_id(), t->node_id(), incarnation, t->incarnation(), t->lost_below_inode());
  }
  t->set_incarnation(incarnation);
  return t->lost_below_inode();
}

Result<proto::RegisterRsp> ClusterManager::Register(const proto::RegisterReq& req) {
  // Read before taking mu_: the namespace takes its own lock, and places
  // files (asking this manager for chains) while holding it. An inode created
  // after this read cannot have chunks on the disk being replaced: that disk
  // was gone before this registration started.
  std::function<uint64_t()> next_inode;
  {
    std::lock_guard<std::mutex> l(mu_);
    next_inode = next_inode_;
  }
  const uint64_t next_ino = next_inode ? next_inode() : 0;
  std::lock_guard<std::mutex> l(mu_);
  if (req.node_id() == 0) return Error(proto::INVALID_ARGUMENT, "node id 0 is reserved");
  for (const auto& ti : req.targets()) {
    proto::Target* t = FindTarget(ti.target_id());
    if (ti.target_id() == 0) return Error(proto::INVALID_ARGUMENT, "target id 0 is reserved");
    if (t && t->node_id() != req.node_id())
      return Error(proto::INVALID_ARGUMENT, "target " + std::to_string(ti.target_id()) + " belongs to node " +
                                                std::to_string(t->node_id()));
    if (!cluster_uuid_.empty() && !ti.cluster_uuid().empty() && ti.cluster_uuid() != cluster_uuid_)
      return Error(proto::INVALID_ARGUMENT, "target " + std::to_string(ti.target_id()) + " at " + ti.path() +
                                                " is stamped for cluster " + ti.cluster_uuid() +
                                                ", but this meta serves cluster " + cluster_uuid_);
  }
  proto::RegisterRsp rsp;
  rsp.set_cluster_uuid(cluster_uuid_);
  if (req.before_serving()) {
    // A target never seen lost nothing; it is recorded when it registers to serve.
    bool changed = false;
    for (const auto& ti : req.targets()) {
      proto::Target* t = FindTarget(ti.target_id());
      proto::TargetVerdict* v = rsp.add_targets();
      v->set_target_id(ti.target_id());
      if (!t) continue;
      uint64_t before = t->incarnation();
      v->set_lost_below_inode(NoteIncarnation(t, /*is_new=*/false, ti.incarnation(), next_ino));
      changed |= t->incarnation() != before;
    }
    if (changed) RETURN_IF_ERROR(Persist());
    rsp.set_table_version(table_.version());
    return rsp;
  }
  proto::Node* n = FindNode(req.node_id());
  if (!n) {
    n = table_.add_nodes();
    n->set_node_id(req.node_id());
  }
  n->set_address(req.address());
  n->set_state(proto::NODE_ONLINE);
  n->set_last_heartbeat_ms(clock_->NowMs());
  uint32_t next_chain = 1;
  for (const auto& c : table_.chains()) next_chain = std::max(next_chain, c.chain_id() + 1);
  for (const auto& ti : req.targets()) {
    proto::Target* t = FindTarget(ti.target_id());
    const bool is_new = t == nullptr;
    if (!t) {
      t = table_.add_targets();
      t->set_target_id(ti.target_id());
      t->set_node_id(req.node_id());
      t->set_state(proto::TARGET_SERVING);
      proto::Chain* c = table_.add_chains();
      c->set_chain_id(next_chain++);
      c->set_version(1);
      c->add_targets(ti.target_id());
    }
    t->set_path(ti.path());
    t->set_capacity_bytes(ti.capacity_bytes());
    t->set_free_bytes(ti.free_bytes());
    SetTargetState(t, proto::TARGET_SERVING);
    proto::TargetVerdict* v = rsp.add_targets();
    v->set_target_id(ti.target_id());
    v->set_lost_below_inode(NoteIncarnation(t, is_new, ti.incarnation(), next_ino));
  }
  table_.set_version(table_.version() + 1);
  RETURN_IF_ERROR(Persist());
  LOG_INFO("node {} registered at {} with {} targets (table v{})", req.node_id(), req.address(), req.targets_size(),
           table_.version());
  rsp.set_table_version(table_.version());
  return rsp;
}

proto::HeartbeatRsp ClusterManager::Heartbeat(const proto::HeartbeatReq& req) {
  std::lock_guard<std::mutex> l(mu_);
  proto::HeartbeatRsp rsp;
  proto::Node* n = FindNode(req.node_id());
  if (!n || n->state() != proto::NODE_ONLINE) {
    rsp.set_reregister(true);  // offline or unknown: come back through Register
  } else {
    n->set_last_heartbeat_ms(clock_->NowMs());
    *n->mutable_stats() = req.stats();
    for (const auto& ti : req.targets()) {
      proto::Target* t = FindTarget(ti.target_id());
      if (t && t->node_id() == req.node_id()) {
        t->set_capacity_bytes(ti.capacity_bytes());
        t->set_free_bytes(ti.free_bytes());
      }
    }
  }
  rsp.set_table_version(table_.version());
  return rsp;
}

Status ClusterManager::CheckLiveness() {
  std::lock_guard<std::mutex> l(mu_);
  bool changed = false;
  int64_t now = clock_->NowMs();
  for (auto& n : *table_.mutable_nodes()) {
    if (n.state() != proto::NODE_ONLINE || now - n.last_heartbeat_ms() <= heartbeat_timeout_ms_) continue;
    n.set_state(proto::NODE_OFFLINE);
    for (auto& t : *table_.mutable_targets())
      if (t.node_id() == n.node_id()) SetTargetState(&t, proto::TARGET_OFFLINE);
    LOG_WARN("node {} at {} silent for {} ms: offline", n.node_id(), n.address(), now - n.last_heartbeat_ms());
    changed = true;
  }
  if (!changed) return Status::OK();
  table_.set_version(table_.version() + 1);
  return Persist();
}

proto::ClusterTable ClusterManager::Table() const {
  std::lock_guard<std::mutex> l(mu_);
  return table_;
}

uint64_t ClusterManager::version() const {
  std::lock_guard<std::mutex> l(mu_);
  return table_.version();
}

std::vector<uint32_t> ClusterManager::PlacementChains() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint32_t> serving, all;
  for (const auto& c : table_.chains()) {
    all.push_back(c.chain_id());
    for (const auto& t : table_.targets())
      if (t.state() == proto::TARGET_SERVING && !c.targets().empty() && c.targets(0) == t.target_id())
        serving.push_back(c.chain_id());
  }
  std::sort(serving.begin(), serving.end());
  std::sort(all.begin(), all.end());
  return serving.empty() ? all : serving;
}

void ClusterManager::Capacity(uint64_t* total, uint64_t* free) const {
  std::lock_guard<std::mutex> l(mu_);
  *total = *free = 0;
  for (const auto& t : table_.targets()) {
    *total += t.capacity_bytes();
    *free += t.free_bytes();
  }
}

}  // namespace shoal::meta
