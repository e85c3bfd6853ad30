// The metadata KV seam: ordered key-value column families with atomic,
// durable batches. Real: RocksDB (kv_rocksdb.cc). Test: in-memory (kv_memory.cc).
// Both pass tests/meta/kv_test.cc.
//
// Thread-safety: every method may be called concurrently. Write() applies a
// batch atomically: a concurrent reader sees all of it or none of it (per key).
// When Write() returns OK the batch is durable (fsync'ed for RocksDB).
#pragma once

#include <functional>
#include <memory>
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

class Kv {
 public:
  virtual ~Kv() = default;
  // NOT_FOUND when the key is absent.
  virtual Result<std::string> Get(Cf cf, std::string_view key) = 0;
  virtual Status Write(const KvBatch& batch) = 0;
  // Visits keys that start with `prefix` and are > `after` (or all of the
  // prefix when `after` is empty), in byte order.
  virtual Status Scan(Cf cf, std::string_view prefix, std::string_view after, const ScanFn& fn) = 0;
};

std::unique_ptr<Kv> NewMemoryKv();
// Opens (creating if needed) a RocksDB database at `path` with the column families.
Result<std::unique_ptr<Kv>> OpenRocksKv(const std::string& path);

}  // namespace shoal::meta
