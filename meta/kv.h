// The metadata KV seam: ordered key-value column families with atomic,
// durable batches. Real: RocksDB (kv_rocksdb.cc). Test: in-memory (kv_memory.cc).
// Both pass tests/meta/kv_test.cc.
//
// Thread-safety: every method may be called concurrently. Write() applies a
// batch atomically: a concurrent reader sees all of it or none of it (per key).
//
// Durability and group commit: a batch is applied un-synced (visible at once;
// for RocksDB it is in the WAL file, so a kill -9 of the process loses
// nothing), then made durable by SyncThrough(), where one caller syncs the WAL
// for every batch applied so far and the others waiting on it are released
// together. When Write() returns OK the batch is durable - unless the calling
// thread has a DeferredSync open: then Write() returns once the batch is
// applied, and DeferredSync::Wait() makes it durable. That lets a caller
// release its own locks before the sync (meta_service.cc waits before it
// replies), so that concurrent operations share one sync.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace shoal::meta {

// kOpenFiles: open-file records, orphans and sessions (meta/ops/open_files.cc);
// kRequests: results of recent mutating calls, for retries (meta/request_log.h);
// kXattrs: extended attributes (meta/ops/xattr.cc).
enum class Cf { kInodes = 0, kDirents = 1, kCluster = 2, kDeleteQueue = 3, kOpenFiles = 4, kRequests = 5, kXattrs = 6 };
constexpr int kNumCfs = 7;

class KvBatch {
 public:
  struct Op {
    Cf cf;
    std::string key;
    std::optional<std::string> value;  // nullopt: delete
  };
  void Put(Cf cf, std::string key, std::string value) { ops_.push_back({cf, std::move(key), std::move(value)}); }
  void Delete(Cf cf, std::string key) { ops_.push_back({cf, std::move(key), std::nullopt}); }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
};

// Return false to stop a scan.
using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;

// Group commit: callers apply batches, note them with Applied(), and wait in
// SyncThrough(seq); one of the waiters (the leader) runs `sync` for every batch
// applied before it started while the others wait for the round to end. No
// lock is held across `sync`. Thread-safe.
class GroupCommitter {
 public:
  // `sync` makes durable every batch whose apply returned before it was called.
  explicit GroupCommitter(std::function<Status()> sync) : sync_(std::move(sync)) {}
  // Call after a batch's apply returned; its sequence number (1, 2, ...).
  uint64_t Applied() { return applied_.fetch_add(1, std::memory_order_acq_rel) + 1; }
  uint64_t applied() const { return applied_.load(std::memory_order_acquire); }
  uint64_t synced() const;
  uint64_t sync_rounds() const;  // how many times `sync` ran
  // Returns once every batch numbered <= seq is durable, or the error of the
  // sync round that should have covered it (then it may or may not be).
  Status SyncThrough(uint64_t seq);

 private:
  std::function<Status()> sync_;
  std::atomic<uint64_t> applied_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool syncing_ = false;          // a leader is in sync_
  uint64_t synced_ = 0;           // every batch <= this is durable
  uint64_t failed_through_ = 0;   // the last failed round covered batches <= this
  Status failure_;
  uint64_t rounds_ = 0;
};

class Kv {
 public:
  virtual ~Kv() = default;
  // NOT_FOUND when the key is absent.
  virtual Result<std::string> Get(Cf cf, std::string_view key) = 0;
  // Applies `batch` atomically; durable on return unless this thread has a
  // DeferredSync open (see the top of this file).
  Status Write(const KvBatch& batch);
  // Applies `batch` atomically, visible at once, not necessarily durable;
  // returns its sequence number for SyncThrough.
  virtual Result<uint64_t> Apply(const KvBatch& batch) = 0;
  // Returns once every batch numbered <= seq is durable (group commit).
  virtual Status SyncThrough(uint64_t seq) = 0;
  // The number of the last batch applied: anything a reader may have seen.
  virtual uint64_t LastApplied() const = 0;
  // Visits keys that start with `prefix` and are > `after` (or all of the
  // prefix when `after` is empty), in byte order.
  virtual Status Scan(Cf cf, std::string_view prefix, std::string_view after, const ScanFn& fn) = 0;
};

// Defers the sync of the Writes this thread makes while it is open, so that a
// request handler can release its locks before waiting. Wait() before
// answering: it returns once everything this thread wrote in the scope is
// durable (at once when it wrote nothing: reads may see batches of other
// requests that are applied but still waiting for their sync, see kv.cc). A scope
// opened inside another on the same thread is inert (its Wait() returns OK at
// once; the outer scope collects the writes and waits for them). Not
// thread-safe: used by the thread that opened it.
class DeferredSync {
 public:
  explicit DeferredSync(Kv* kv);
  ~DeferredSync();  // closes the scope; does not wait
  DeferredSync(const DeferredSync&) = delete;
  DeferredSync& operator=(const DeferredSync&) = delete;
  Status Wait();
  // Called by Kv::Write: true when a scope is open on this thread (the batch
  // numbered `seq` then waits for Wait()).
  static bool Defer(Kv* kv, uint64_t seq);

 private:
  Kv* kv_;
  bool active_ = false;
  uint64_t max_seq_ = 0;
  bool wrote_ = false;
};

std::unique_ptr<Kv> NewMemoryKv();
// Opens (creating if needed) a RocksDB database at `path` with the column families.
Result<std::unique_ptr<Kv>> OpenRocksKv(const std::string& path);

}  // namespace shoal::meta
