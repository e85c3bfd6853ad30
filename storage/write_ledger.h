// WriteLedger: what each writer lane last wrote, so that a write is applied
// at most once and an abandoned attempt never lands after a newer write.
//
// A client picks a random 64-bit id when it starts and sends all writes of a
// chunk on one lane (lane = hash of the chunk), one write at a time per lane,
// numbered by a sequence that grows per lane and is kept across the retries
// of one write. For an attempt (client, lane, seq) the ledger:
//   - applies it when seq is newer than the lane's last, and remembers the
//     result;
//   - returns the remembered version without applying again when seq is the
//     last and it succeeded (a retry whose first attempt landed);
//   - applies it again when seq is the last and it failed;
//   - refuses it with SUPERSEDED when seq is older (the client has moved on:
//     applying it would overwrite a newer write).
// client_id 0 means "no ledger" (tools that write alone): applied as is.
//
// Bound: the ledger remembers `max_lanes` lanes (least recently used go). An
// attempt delayed in the network for longer than it takes to cycle through
// that many lanes is no longer recognised as stale. The ledger is in memory:
// a server restart closes every connection, and with them every attempt that
// was in flight to it.
//
// Thread-safety: Apply may be called from any thread; attempts of one lane are
// serialised, different lanes run concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/status.h"

namespace shoal::storage {

class WriteLedger {
 public:
  struct Writer {
    uint64_t client_id = 0;
    uint32_t lane = 0;
    uint64_t seq = 0;
  };

  explicit WriteLedger(size_t max_lanes = 1 << 16) : max_lanes_(max_lanes) {}

  Result<uint64_t> Apply(const Writer& w, const std::function<Result<uint64_t>()>& apply);

  size_t lanes() const;
  uint64_t superseded() const { return superseded_.load(); }  // attempts refused so far

 private:
  struct Lane {
    std::mutex mu;  // held while one attempt of the lane is applied
    uint64_t seq = 0;
    Status status;  // of the write numbered `seq`
    uint64_t version = 0;
  };
  struct Key {
    uint64_t client_id;
    uint32_t lane;
    bool operator==(const Key& o) const { return client_id == o.client_id && lane == o.lane; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.client_id * 0x9E3779B97F4A7C15ull ^ k.lane; }
  };
  std::shared_ptr<Lane> Find(const Key& k);

  size_t max_lanes_;
  std::atomic<uint64_t> superseded_{0};
  mutable std::mutex mu_;
  std::list<Key> lru_;  // front: most recently used
  std::unordered_map<Key, std::pair<std::shared_ptr<Lane>, std::list<Key>::iterator>, KeyHash> lanes_;
};

}  // namespace shoal::storage
