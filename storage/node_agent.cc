#include "storage/node_agent.h"

#include <sys/statvfs.h>

#include "common/log.h"

namespace shoal::storage {

NodeAgent::NodeAgent(rpc::RpcChannel* meta, uint32_t node_id, std::string address, std::vector<TargetConfig> targets,
                     std::function<proto::NodeStats()> stats, int64_t interval_ms, const Clock* clock)
    : meta_(meta), node_id_(node_id), address_(std::move(address)), targets_(std::move(targets)),
      stats_(std::move(stats)), interval_ms_(interval_ms), clock_(clock) {}

NodeAgent::~NodeAgent() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeAgent::SetTargetStamp(uint32_t target_id, std::string cluster_uuid, uint64_t incarnation) {
  std::lock_guard<std::mutex> l(mu_);
  stamps_[target_id] = {std::move(cluster_uuid), incarnation};
}

Result<proto::RegisterRsp> NodeAgent::Identify() { return Register(/*before_serving=*/true); }

Result<proto::RegisterRsp> NodeAgent::Register(bool before_serving) {
  proto::RegisterReq req;
  req.set_node_id(node_id_);
  req.set_address(address_);
  req.set_before_serving(before_serving);
  for (auto& ti : TargetInfos()) *req.add_targets() = ti;
  proto::RegisterRsp rsp;
  RETURN_IF_ERROR(meta_->CallSync(proto::CLUSTER_REGISTER, req, &rsp, 5000));
  if (!before_serving)
    LOG_INFO("registered node {} ({} targets) with meta at {}", node_id_, targets_.size(), meta_->address());
  return rsp;
}

void NodeAgent::Start() {
  thread_ = std::thread([this] { Loop(); });
}

std::vector<proto::TargetInfo> NodeAgent::TargetInfos() {
  std::map<uint32_t, Stamp> stamps;
  {
    std::lock_guard<std::mutex> l(mu_);
    stamps = stamps_;
  }
  std::vector<proto::TargetInfo> out;
  for (const auto& t : targets_) {
    proto::TargetInfo ti;
    ti.set_target_id(t.id);
    ti.set_path(t.path);
    if (auto it = stamps.find(t.id); it != stamps.end()) {
      ti.set_cluster_uuid(it->second.cluster_uuid);
      ti.set_incarnation(it->second.incarnation);
    }
    struct statvfs vfs;
    if (statvfs(t.path.c_str(), &vfs) == 0) {
      ti.set_capacity_bytes(uint64_t{vfs.f_blocks} * vfs.f_frsize);
      ti.set_free_bytes(uint64_t{vfs.f_bavail} * vfs.f_frsize);
    }
    out.push_back(ti);
  }
  return out;
}

void NodeAgent::Loop() {
  bool failing = false;
  bool registered = false;
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    Status st;
    if (!registered) {
      // Meta refuses a target stamped for another cluster (INVALID_ARGUMENT):
      // logged like an outage, and retried in case meta's database returns.
      st = Register(/*before_serving=*/false).status();
      registered = st.ok();
    } else {
      proto::HeartbeatReq req;
      req.set_node_id(node_id_);
      *req.mutable_stats() = stats_();
      for (auto& ti : TargetInfos()) *req.add_targets() = ti;
      proto::HeartbeatRsp rsp;
      st = meta_->CallSync(proto::CLUSTER_HEARTBEAT, req, &rsp, 5000);
      if (st.ok() && rsp.reregister()) registered = false;
    }
    if (!st.ok() && !failing) LOG_WARN("call to meta at {} failed: {}", meta_->address(), st.ToString());
    if (st.ok() && failing) LOG_INFO("meta at {} reachable again", meta_->address());
    failing = !st.ok();
    l.lock();
    if (registered || failing) clock_->WaitUntil(cv_, l, clock_->NowMs() + interval_ms_, [this] { return stop_; });
  }
}

Result<std::vector<TargetConfig>> ParseTargets(const std::vector<std::string>& specs) {
  std::vector<TargetConfig> out;
  for (const auto& s : specs) {
    auto colon = s.find(':');
    char* end = nullptr;
    unsigned long id = colon == std::string::npos ? 0 : strtoul(s.c_str(), &end, 10);
    if (colon == std::string::npos || end != s.c_str() + colon || id == 0 || id > UINT32_MAX || colon + 1 == s.size())
      return Error(proto::INVALID_ARGUMENT, "target '" + s + "' is not ID:PATH with ID > 0");
    out.push_back({static_cast<uint32_t>(id), s.substr(colon + 1)});
  }
  if (out.empty()) return Error(proto::INVALID_ARGUMENT, "no targets configured");
  return out;
}

}  // namespace shoal::storage
