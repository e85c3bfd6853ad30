// Reclaimer: frees the chunks of deleted files in the background. Meta keeps
// the queue (MetaStore::PendingReclaims); for each entry the reclaimer asks
// every target of the file's chains to remove the inode's chunks, and drops the
// entry once all of them answered OK. Failures are retried on the next pass
// (every `interval_ms`); each RPC is bounded by a deadline.
//
// A file is reclaimed `delay_ms` after its last link went away: a client that
// still has it open keeps reading its bytes for that long (open files are not
// tracked yet, so this grace is what protects unlink-while-open).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/rpc/channel_pool.h"
#include "meta/cluster_manager.h"
#include "meta/meta_store.h"

namespace shoal::meta {

class Reclaimer {
 public:
  Reclaimer(MetaStore* store, ClusterManager* cluster, rpc::ChannelPool* channels, int64_t interval_ms,
            int64_t delay_ms);
  ~Reclaimer();
  void Start();
  void Kick();  // run a pass soon
  // One pass; returns how many files were fully reclaimed.
  Result<int> RunOnce();

 private:
  MetaStore* store_;
  ClusterManager* cluster_;
  rpc::ChannelPool* channels_;
  int64_t interval_ms_;
  int64_t delay_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool kicked_ = false;
  std::thread thread_;
};

}  // namespace shoal::meta
