#include "storage/write_ledger.h"

namespace shoal::storage {

std::shared_ptr<WriteLedger::Lane> WriteLedger::Find(const Key& k) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = lanes_.find(k);
  if (it != lanes_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  if (lanes_.size() >= max_lanes_) {
    lanes_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(k);
  auto lane = std::make_shared<Lane>();
  lanes_.emplace(k, std::make_pair(lane, lru_.begin()));
  return lane;
}

size_t WriteLedger::lanes() const {
  std::lock_guard<std::mutex> l(mu_);
  return lanes_.size();
}

Result<uint64_t> WriteLedger::Apply(const Writer& w, const std::function<Result<uint64_t>()>& apply) {
  if (w.client_id == 0) return apply();
  std::shared_ptr<Lane> lane = Find(Key{w.client_id, w.lane});
  std::lock_guard<std::mutex> l(lane->mu);
  if (w.seq < lane->seq) {
    superseded_++;
    return Error(proto::SUPERSEDED, "write " + std::to_string(w.seq) + " of lane " + std::to_string(w.lane) +
                                        " arrived after the lane's write " + std::to_string(lane->seq));
  }
  if (w.seq == lane->seq && lane->status.ok()) return lane->version;  // a retry of a write that landed
  Result<uint64_t> r = apply();
  lane->seq = w.seq;
  lane->status = r.status();
  lane->version = r.ok() ? *r : 0;
  return r;
}

}  // namespace shoal::storage
