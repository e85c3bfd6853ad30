#include <map>
#include <mutex>
#include <shared_mutex>

#include "meta/kv.h"

namespace shoal::meta {
namespace {

class MemoryKv : public Kv {
 public:
  Result<std::string> Get(Cf cf, std::string_view key) override {
    std::shared_lock<std::shared_mutex> l(mu_);
    auto& m = maps_[static_cast<int>(cf)];
    auto it = m.find(std::string(key));
    if (it == m.end()) return Error(proto::NOT_FOUND, "no such key");
    return it->second;
  }

  // Nothing here outlives the process, so an applied batch is as durable as
  // it gets: the committer's sync has nothing to do, but it still orders the
  // waiters like the real one.
  Result<uint64_t> Apply(const KvBatch& batch) override {
    std::unique_lock<std::shared_mutex> l(mu_);
    for (const auto& op : batch.ops()) {
      auto& m = maps_[static_cast<int>(op.cf)];
      if (op.value) m[op.key] = *op.value;
      else m.erase(op.key);
    }
    return commit_.Applied();
  }
  Status SyncThrough(uint64_t seq) override { return commit_.SyncThrough(seq); }
  uint64_t LastApplied() const override { return commit_.applied(); }

  Status Scan(Cf cf, std::string_view prefix, std::string_view after, const ScanFn& fn) override {
    // Copy the range out so that `fn` may call back into the store.
    std::vector<std::pair<std::string, std::string>> rows;
    {
      std::shared_lock<std::shared_mutex> l(mu_);
      auto& m = maps_[static_cast<int>(cf)];
      auto it = after.empty() ? m.lower_bound(std::string(prefix)) : m.upper_bound(std::string(after));
      for (; it != m.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) rows.emplace_back(*it);
    }
    for (const auto& [k, v] : rows)
      if (!fn(k, v)) break;
    return Status::OK();
  }

 private:
  std::shared_mutex mu_;
  std::map<std::string, std::string> maps_[kNumCfs];
  GroupCommitter commit_{[] { return Status::OK(); }};
};

}  // namespace

std::unique_ptr<Kv> NewMemoryKv() { return std::make_unique<MemoryKv>(); }

}  // namespace shoal::meta
