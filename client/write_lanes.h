// Write lanes: how a client keeps its writes ordered at the storage servers.
//
// Every write of a chunk goes on the chunk's lane (a hash of inode and index
// into kLanes lanes), one write at a time per lane, numbered by a sequence
// that grows per lane; the number is kept across the retries of one write.
// Together with the server's WriteLedger (storage/write_ledger.h) this means a
// retried write lands once, and an attempt that is still wandering through the
// network after its write was retried, given up or followed by a newer write
// of the same bytes is refused instead of overwriting that newer write.
// Writes of different chunks (mostly different lanes) run in parallel.
//
// Thread-safety: all methods may be called from any thread. `start` callbacks
// run outside the lanes' lock; Release never recurses into itself however
// long a lane's queue is.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

namespace shoal::client {

class WriteLanes {
 public:
  static constexpr uint32_t kLanes = 256;
  using Start = std::function<void(uint32_t lane, uint64_t seq)>;

  WriteLanes();  // picks a random client id

  uint64_t client_id() const { return client_id_; }
  static uint32_t LaneOf(uint64_t inode, uint64_t index);

  // Runs start(lane, seq) now if the lane is free, else when the writes queued
  // before it have released the lane.
  void Acquire(uint32_t lane, Start start);
  // The lane's current write finished (for good: succeeded or failed).
  void Release(uint32_t lane);

 private:
  struct Lane {
    bool busy = false;
    uint64_t seq = 0;
    std::deque<Start> waiting;
  };
  uint64_t client_id_;
  std::mutex mu_;
  std::vector<Lane> lanes_;
};

}  // namespace shoal::client
