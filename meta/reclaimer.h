// Reclaimer: frees the chunks of deleted files in the background. Meta keeps
// the queue (MetaStore::PendingReclaims); for each entry the reclaimer asks
// every target of the file's chains to remove the inode's chunks (one request
// per target for up to 128 files of a pass), and drops the
// entry once all of them answered OK. Failures are retried on the next pass
// (every `interval_ms`); each RPC is bounded by a deadline.
//
// Open files: a file unlinked while open is not queued at all until its last
// open record goes (MetaStore::RecordOpen); each pass first ends the client
// sessions whose lease has passed (MetaStore::ExpireSessions), which releases
// a dead client's opens.
//
// Grace period: a file is reclaimed once the reclaimer has known it to be
// deleted for `delay_ms` on its Clock (a margin for clients that read by
// inode without an open record, e.g. batch reads). The clock is monotonic and
// in-memory, so a restarted meta grants every queued file a fresh grace
// period: later than need be, never earlier — a wall-clock stamp would reclaim
// early after the clock jumped forward.
//
// Thread-safety: Start/Kick from any thread; RunOnce from one thread at a time
// (the background thread once started).
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/rpc/channel_pool.h"
#include "meta/cluster_manager.h"
#include "meta/meta_store.h"

namespace shoal::meta {

class Reclaimer {
 public:
  Reclaimer(MetaStore* store, ClusterManager* cluster, rpc::ChannelPool* channels, int64_t interval_ms,
            int64_t delay_ms, const Clock* clock = RealClock());
  ~Reclaimer();
  void Start();
  void Kick();  // run a pass soon
  // One pass over the whole queue; returns how many files were fully reclaimed.
  Result<int> RunOnce();

 private:
  // Asks every target of the files' chains to remove their chunks, with one
  // request per target for many files; returns the files some target did not
  // answer OK for.
  std::set<uint64_t> RemoveChunks(const std::vector<const MetaStore::Reclaim*>& files,
                                  const proto::ClusterTable& table);

  MetaStore* store_;
  ClusterManager* cluster_;
  rpc::ChannelPool* channels_;
  int64_t interval_ms_;
  int64_t delay_ms_;
  const Clock* clock_;
  std::map<uint64_t, int64_t> first_seen_ms_;  // queued inode -> when a pass first saw it (RunOnce only)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool kicked_ = false;
  std::thread thread_;
};

}  // namespace shoal::meta
