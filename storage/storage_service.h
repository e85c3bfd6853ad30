// StorageService: the RPC face of shoal-storage over its targets' chunk stores,
// served by a LoopServer.
//
// STORAGE_READ (and STORAGE_READ_PACKED: the same read with its items and
// results as fixed-size records, proto/read_records.h) runs on the
// connection's event loop: it starts the disk reads on that loop's own ring
// and replies (results + the bytes of every OK item as payload, sent straight
// from the read buffers) from their completion, on the same thread. Writes, truncates and removes block on the disk (fsync) and run
// on the service's worker pool, replying from there. A read of a chunk whose
// file is not open yet opens it on a helper thread (open_threads) and goes on
// on the loop. Requests name targets by
// id; an unknown target fails that item (or call) with NOT_FOUND. Writes pass
// the WriteLedger, so a retried write lands once and an overtaken attempt not
// at all. A read of more than `max_read_bytes` or `max_read_items` is refused
// with TOO_LARGE before anything is allocated for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include "common/loop/event_loop.h"
#include "common/metrics.h"
#include "common/rpc/loop_server.h"
#include "common/thread_pool.h"
#include "proto/cluster.pb.h"
#include "storage/chunk_store.h"
#include "storage/write_ledger.h"

namespace shoal::storage {

class StorageService {
 public:
  struct Options {
    uint64_t max_read_bytes = 64ull << 20;
    uint32_t max_read_items = 16384;
    int worker_threads = 4;  // writes, truncates, removes
    // Per event loop: read buffers of 16 KiB registered with its ring (a 4 KiB
    // read needs up to 8 KiB once widened to blocks); larger reads, and reads
    // beyond these, use the heap. 0: none.
    uint32_t read_slab_slots = 1024;
    // Per event loop: read buffers of 1 MiB (a whole default chunk), registered
    // likewise, for reads above 16 KiB. 0: none.
    uint32_t read_slab_large_slots = 16;
    // Threads that open chunk files missing from the open-file cache, so that
    // an open waiting on the disk holds up no event loop. At least 1.
    int open_threads = 2;
  };
  // `targets` maps target id to its store; the stores outlive the service.
  // `loops` are the event loops the server will serve on (reads go to their rings).
  StorageService(std::map<uint32_t, ChunkStore*> targets, std::vector<loop::EventLoop*> loops, Options options);
  // Finishes the writes and chunk opens in progress and waits (up to 10 s)
  // for the reads in flight (their replies go nowhere once the server
  // stopped): stop the server first, the loops after.
  ~StorageService();

  void Register(rpc::LoopServer& server);
  proto::NodeStats Stats() const;
  // Prometheus text: per-target counters, reads in flight, read latency.
  std::string RenderMetrics() const;
  // Write attempts refused because a newer write of their lane had landed.
  uint64_t superseded_writes() const { return ledger_.superseded(); }
  // STORAGE_REMOVE requests answered (each names one inode or many).
  uint64_t remove_requests() const { return remove_requests_.load(); }

  // Read requests between arrival and reply; the destructor waits for none.
  struct ReadsInFlight {
    std::atomic<int64_t> count{0};
    std::mutex mu;
    std::condition_variable drained;
    void Start() { count.fetch_add(1, std::memory_order_relaxed); }
    void End() {
      if (count.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      std::lock_guard<std::mutex> l(mu);  // a waiter checks the count under mu
      drained.notify_all();
    }
  };

 private:
  void HandleRead(std::unique_ptr<rpc::LoopCall> call);        // STORAGE_READ (protobuf items)
  void HandlePackedRead(std::unique_ptr<rpc::LoopCall> call);  // STORAGE_READ_PACKED (records)
  // TOO_LARGE beyond max_read_items / max_read_bytes.
  Status CheckReadSize(uint64_t items, uint64_t bytes) const;
  // Reads `ops` (item i on target targets[i]) on the call's loop and replies
  // in the call's encoding.
  void StartRead(std::unique_ptr<rpc::LoopCall> call, std::vector<ReadOp> ops, const uint32_t* targets, bool packed);
  void HandleWrite(rpc::LoopCall& call);
  ChunkStore* Find(uint32_t target_id) const;
  ReadEngine* EngineFor(loop::EventLoop* loop) const;
  // Runs `fn(call)` on the worker pool.
  void OnPool(std::unique_ptr<rpc::LoopCall> call, void (*fn)(StorageService*, rpc::LoopCall&));

  std::map<uint32_t, ChunkStore*> targets_;
  Options options_;
  std::vector<loop::EventLoop*> loops_;
  std::unique_ptr<ThreadPool> openers_;  // drained in the destructor, which then waits for the reads
  std::map<loop::EventLoop*, std::unique_ptr<ReadEngine>> engines_;
  ReadsInFlight reads_in_flight_;
  Histogram read_latency_;  // request arrival to reply
  WriteLedger ledger_;
  std::atomic<uint64_t> remove_requests_{0};
  std::unique_ptr<ThreadPool> pool_;  // last: drained first
};

}  // namespace shoal::storage
