// The chunk inventory of a target: which chunks were written and not since
// cut away or removed. It is what tells a hole from a loss: a chunk file that
// is missing but listed was lost (DATA_LOST), one that is missing and not
// listed was never written (zeros).
//
// The chunk files stay the truth about what a chunk holds: a file present at
// its final name is always a whole committed version (the write path renames
// complete versions in), and is served whether listed or not. The inventory
// only has to be right about files that are *missing*, which allows:
//
// - Add is lazy: applied at once, durable with the next WAL sync (at most
//   `sync_interval_ms` later, or at close). A power cut inside that window
//   leaves a chunk whose file is present but unlisted; it reads normally and
//   its next write lists it again. Only the loss of that same file before
//   then would read as a hole. So a new chunk costs no extra sync.
// - Cuts are announced before their files go: BeginCut durably marks the
//   inode's chunks from `first` on as "being cut", the files are unlinked
//   (durably), and EndCut unlists them and clears the mark (lazily). A
//   missing chunk under such a mark is a hole, not a loss, whatever point a
//   crash stopped at. A mark left by a failed cut stays until a later cut of
//   that inode ends; until then the loss of a chunk under it reads as a hole.
// - Remove is a cut of every chunk: marked, unlinked, then unlisted (lazily).
//
// Kept in RocksDB under <target>/inventory (a per-target KV, as 3FS keeps its
// chunk metadata; replication's resync will read it too). A target written
// before the inventory existed gets one built from its chunk files when
// first opened.
//
// Thread-safety: every method may be called from any thread. The caller
// orders changes of one inode (ChunkLocks: a cut holds the inode exclusively).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace shoal::storage {

class ChunkLayout;

class ChunkInventory {
 public:
  struct Options {
    int64_t sync_interval_ms = 1000;  // how late a lazy change becomes durable
    const Clock* clock = RealClock();
  };
  // Opens (or creates) the inventory of the target laid out by `layout`.
  // Building one for an existing target lists every chunk file found there.
  static Result<std::unique_ptr<ChunkInventory>> Open(const ChunkLayout& layout, Options options);
  static Result<std::unique_ptr<ChunkInventory>> Open(const ChunkLayout& layout) { return Open(layout, Options()); }
  // Makes every change durable, then closes.
  virtual ~ChunkInventory() = default;

  virtual Result<bool> Contains(uint64_t inode, uint64_t index) = 0;
  // For a chunk whose file is missing: listed, and not under a cut mark.
  virtual Result<bool> IsLost(uint64_t inode, uint64_t index) = 0;
  // Lists the chunk (lazily durable).
  virtual Status Add(uint64_t inode, uint64_t index) = 0;
  // Marks the inode's chunks with index >= `first` as being cut; durable on OK.
  virtual Status BeginCut(uint64_t inode, uint64_t first) = 0;
  // The cut from `first` is done: unlists those chunks and clears the mark
  // (lazily durable). A mark reaching lower than `first` stays.
  virtual Status EndCut(uint64_t inode, uint64_t first) = 0;
  // BeginCut(inode, 0) of each inode, durable together on OK (one sync).
  virtual Status BeginRemoval(const std::vector<uint64_t>& inodes) = 0;
  // Unlists every chunk of the inode and any mark (lazily durable).
  virtual Status RemoveInode(uint64_t inode) = 0;
  // The inode's listed chunk indexes, ascending.
  virtual Result<std::vector<uint64_t>> List(uint64_t inode) = 0;
  // Makes every change so far durable.
  virtual Status Sync() = 0;
};

}  // namespace shoal::storage
