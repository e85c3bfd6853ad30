#include "meta/reclaimer.h"

#include <set>

#include "common/log.h"
#include "proto/storage.pb.h"

namespace shoal::meta {

Reclaimer::Reclaimer(MetaStore* store, ClusterManager* cluster, rpc::ChannelPool* channels, int64_t interval_ms,
                     int64_t delay_ms)
    : store_(store), cluster_(cluster), channels_(channels), interval_ms_(interval_ms), delay_ms_(delay_ms) {}

Reclaimer::~Reclaimer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reclaimer::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, std::chrono::milliseconds(interval_ms_), [this] { return stop_ || kicked_; });
      if (stop_) break;
      kicked_ = false;
      l.unlock();
      auto n = RunOnce();
      if (!n.ok()) LOG_WARN("reclaim pass failed: {}", n.status().ToString());
      l.lock();
    }
  });
}

void Reclaimer::Kick() {
  {
    std::lock_guard<std::mutex> l(mu_);
    kicked_ = true;
  }
  cv_.notify_all();
}

Result<int> Reclaimer::RunOnce() {
  ASSIGN_OR_RETURN(auto pending, store_->PendingReclaims(256, MetaStore::NowNs() / 1000000 - delay_ms_));
  if (pending.empty()) return 0;
  proto::ClusterTable table = cluster_->Table();
  int done = 0;
  for (const auto& r : pending) {
    std::set<uint32_t> targets;
    for (uint32_t chain_id : r.layout.chains())
      for (const auto& c : table.chains())
        if (c.chain_id() == chain_id) targets.insert(c.targets().begin(), c.targets().end());
    bool all_ok = true;
    for (uint32_t tid : targets) {
      std::string address;
      for (const auto& t : table.targets())
        if (t.target_id() == tid)
          for (const auto& n : table.nodes())
            if (n.node_id() == t.node_id()) address = n.address();
      if (address.empty()) {
        all_ok = false;
        continue;
      }
      proto::RemoveReq req;
      req.set_target_id(tid);
      req.set_inode(r.ino);
      proto::Empty rsp;
      Status st = channels_->Get(address)->CallSync(proto::STORAGE_REMOVE, req, &rsp, 5000);
      if (!st.ok()) {
        all_ok = false;
        LOG_DEBUG("reclaim of inode {} on target {}: {}", r.ino, tid, st.ToString());
      }
    }
    if (all_ok) {
      RETURN_IF_ERROR(store_->FinishReclaim(r.ino));
      ++done;
    }
  }
  return done;
}

}  // namespace shoal::meta
