// The chunk inventory of a target: which chunks were written (acknowledged)
// and not since cut away or removed. It is what tells a hole from a loss: a
// chunk file that is missing but listed was lost (DATA_LOST), one that is
// missing and not listed was never written (zeros).
//
// The inventory, not the directory, is the truth about which chunk files are
// committed. The write path makes a new chunk's file durable first and lists
// it after; truncate and remove unlist first and unlink after. So a crash
// between the two steps leaves at most a file that is present but not listed:
// never acknowledged (or already cut away), it reads as a hole and the next
// write of that chunk replaces it. Lists only existence; the chunk's version
// stays in its header.
//
// Kept in RocksDB under <target>/inventory (a per-target KV, as 3FS keeps its
// chunk metadata; replication's resync will read it too). Every change is
// synced before it returns OK; RocksDB groups concurrent synced writes into
// one WAL sync. A target written before the inventory existed gets one built
// from its chunk files when first opened.
//
// Thread-safety: every method may be called from any thread. The caller
// orders changes of one chunk (ChunkLocks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace shoal::storage {

class ChunkLayout;

class ChunkInventory {
 public:
  // Opens (or creates) the inventory of the target laid out by `layout`.
  // Building one for an existing target lists every chunk file found there.
  static Result<std::unique_ptr<ChunkInventory>> Open(const ChunkLayout& layout);
  virtual ~ChunkInventory() = default;

  virtual Result<bool> Contains(uint64_t inode, uint64_t index) = 0;
  // Lists the chunk; durable on OK.
  virtual Status Add(uint64_t inode, uint64_t index) = 0;
  // Unlists every chunk of the inode with index >= `first`; durable on OK.
  // A no-op (no sync) when there is none.
  virtual Status RemoveFrom(uint64_t inode, uint64_t first) = 0;
  // The inode's listed chunk indexes, ascending.
  virtual Result<std::vector<uint64_t>> List(uint64_t inode) = 0;
};

}  // namespace shoal::storage
