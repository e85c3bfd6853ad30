#include "meta/reclaimer.h"

#include <map>
#include <set>
#include <vector>

#include "common/log.h"
#include "proto/storage.pb.h"

namespace shoal::meta {

Reclaimer::Reclaimer(MetaStore* store, ClusterManager* cluster, rpc::ChannelPool* channels, int64_t interval_ms,
                     int64_t delay_ms, const Clock* clock)
    : store_(store),
      cluster_(cluster),
      channels_(channels),
      interval_ms_(interval_ms),
      delay_ms_(delay_ms),
      clock_(clock) {}

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
      clock_->WaitUntil(cv_, l, clock_->NowMs() + interval_ms_, [this] { return stop_ || kicked_; });
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
  // Dead clients' opens go first, so that their orphans are queued below.
  if (auto ended = store_->ExpireSessions(); !ended.ok())
    LOG_WARN("expiring client sessions failed: {}", ended.status().ToString());
  int64_t now = clock_->NowMs();
  proto::ClusterTable table = cluster_->Table();
  std::map<uint64_t, int64_t> seen;  // this pass's view; entries gone from the queue drop out
  int done = 0;
  constexpr size_t kBatch = 256;
  for (uint64_t after = 0;;) {
    ASSIGN_OR_RETURN(auto batch, store_->PendingReclaims(kBatch, after));
    std::vector<const MetaStore::Reclaim*> due;
    for (const auto& r : batch) {
      auto known = first_seen_ms_.find(r.ino);
      int64_t first = known == first_seen_ms_.end() ? now : known->second;
      if (now - first >= delay_ms_) due.push_back(&r);
      else seen[r.ino] = first;
    }
    std::set<uint64_t> kept = RemoveChunks(due, table);
    for (const MetaStore::Reclaim* r : due) {
      if (kept.count(r->ino)) {
        seen[r->ino] = first_seen_ms_.count(r->ino) ? first_seen_ms_[r->ino] : now;
        continue;
      }
      RETURN_IF_ERROR(store_->FinishReclaim(r->ino));
      ++done;
    }
    if (batch.size() < kBatch) break;
    after = batch.back().ino;
  }
  first_seen_ms_ = std::move(seen);
  return done;
}

std::set<uint64_t> Reclaimer::RemoveChunks(const std::vector<const MetaStore::Reclaim*>& files,
                                           const proto::ClusterTable& table) {
  // Every target of each file's chains, with the files it holds chunks of:
  // one request per target for many files, not one per file and target.
  std::map<uint32_t, std::set<uint64_t>> by_target;
  for (const MetaStore::Reclaim* r : files)
    for (uint32_t chain_id : r->layout.chains())
      for (const auto& c : table.chains())
        if (c.chain_id() == chain_id)
          for (uint32_t tid : c.targets()) by_target[tid].insert(r->ino);
  std::set<uint64_t> kept;  // not removed from every target: retried next pass
  constexpr int kPerRequest = 128;
  for (const auto& [tid, inodes] : by_target) {
    std::string address;
    for (const auto& t : table.targets())
      if (t.target_id() == tid)
        for (const auto& n : table.nodes())
          if (n.node_id() == t.node_id()) address = n.address();
    if (address.empty()) {
      kept.insert(inodes.begin(), inodes.end());
      continue;
    }
    rpc::RpcChannel* channel = channels_->Get(address);
    for (auto it = inodes.begin(); it != inodes.end();) {
      proto::RemoveReq req;
      req.set_target_id(tid);
      while (it != inodes.end() && req.inodes_size() < kPerRequest) req.add_inodes(*it++);
      proto::RemoveRsp rsp;
      // Generous: a request may sync the target a few times per inode.
      Status st = channel->CallSync(proto::STORAGE_REMOVE, req, &rsp, 30000);
      if (!st.ok()) {
        kept.insert(req.inodes().begin(), req.inodes().end());
        LOG_DEBUG("reclaim of {} inodes on target {}: {}", req.inodes_size(), tid, st.ToString());
        continue;
      }
      if (rsp.tried() == static_cast<uint32_t>(req.inodes_size())) {
        kept.insert(rsp.failed().begin(), rsp.failed().end());  // retried next pass, alone
        if (rsp.failed_size())
          LOG_DEBUG("reclaim of {} inodes on target {}: {}", rsp.failed_size(), tid, rsp.error());
        continue;
      }
      // A server that predates batches removed nothing: one request per inode.
      for (uint64_t inode : req.inodes()) {
        proto::RemoveReq one;
        one.set_target_id(tid);
        one.set_inode(inode);
        proto::Empty empty;
        if (Status one_st = channel->CallSync(proto::STORAGE_REMOVE, one, &empty, 30000); !one_st.ok()) {
          kept.insert(inode);
          LOG_DEBUG("reclaim of inode {} on target {}: {}", inode, tid, one_st.ToString());
        }
      }
    }
  }
  return kept;
}

}  // namespace shoal::meta
