// The chunk store seam: the chunks of one target.
//
// A chunk is identified by (inode, index) and holds up to `chunk_size` bytes.
// A chunk never written (or cut away, or removed), and any byte past what was
// written, reads as zeros. A chunk that was written and has gone missing fails
// with DATA_LOST rather than pass off lost bytes as a hole: the O_DIRECT store
// lists every written chunk in an inventory (chunk_inventory.h), and a missing
// chunk of an inode below the lost-below mark (SetLostBelow: the target was
// re-formatted after that inode was written) is lost too.
//
// Versions: every chunk has a committed version, 1 after its first write and
// one more with every write or cut. A write in progress builds the next
// (pending) version beside the committed one and commits it atomically; a
// crash leaves the committed one. A write may name the version it must commit
// as (for chains, where the head picks it): the store refuses it with
// STALE_VERSION unless the committed version is exactly one less.
// Every stored 4 KiB block carries a CRC32C; a read verifies the blocks it
// touches and fails that op with CHECKSUM_MISMATCH (counted) instead of
// returning bad bytes.
//
// Real: UringChunkStore (O_DIRECT files read through io_uring). Test:
// MemoryChunkStore. Both pass tests/storage/chunk_store_test.cc.
//
// Thread-safety: all methods may be called concurrently. Writes to one chunk
// are serialized; a read sees a chunk either before or after a write, never
// half of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/status.h"
#include "storage/buffer_slab.h"

namespace shoal::storage {

class ReadEngine;  // uring_reader.h

constexpr uint32_t kBlockSize = 4096;
constexpr uint32_t kMaxChunkSize = 64u << 20;

// Validates a chunk size: a multiple of 4 KiB, at most 64 MiB.
Status CheckChunkSize(uint32_t chunk_size);

struct ReadOp {
  // Input.
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t chunk_size = 0;
  // Output, valid when the batch's callback runs: on OK, `data` points at
  // `length` bytes owned by `slab_buffer` (a read engine's registered slab)
  // or else by `buffer` (the heap).
  Status status;
  const uint8_t* data = nullptr;
  AlignedBuffer buffer;
  SlabBuffer slab_buffer;
};

struct ChunkWrite {
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t offset = 0;
  const uint8_t* data = nullptr;
  uint32_t length = 0;
  uint32_t chunk_size = 0;
  uint64_t version = 0;  // the version to commit as; 0: the next one
};

struct StoreStats {
  std::atomic<uint64_t> reads{0}, read_bytes{0}, writes{0}, write_bytes{0}, checksum_errors{0}, io_errors{0};
  std::atomic<uint64_t> journaled_writes{0}, journal_commits{0};  // O_DIRECT store: see journaled_writes.h
};

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  // Starts every op of `ops` (which must outlive the call of `done`) and calls
  // `done` once, after all of them finished, on an internal thread or inline.
  void Read(std::vector<ReadOp*> ops, std::function<void()> done) { ReadOn(std::move(ops), std::move(done), nullptr); }
  // The same, with the disk reads on `engine` (e.g. the event loop serving the
  // request: then `done` runs on that loop's thread); nullptr: the store's own.
  virtual void ReadOn(std::vector<ReadOp*> ops, std::function<void()> done, ReadEngine* engine) = 0;

  // Stores the bytes at `offset` of the chunk and returns the new committed
  // version; durable when it returns OK. On error nothing is acknowledged and
  // the chunk holds either its old version or (when the commit itself could
  // not be made durable) the new one — never a mix. INVALID_ARGUMENT when the
  // range leaves the chunk or chunk_size is invalid; STALE_VERSION (see
  // above); DATA_LOST for a missing chunk below the lost-below mark;
  // NO_SPACE / IO_ERROR from the disk.
  virtual Result<uint64_t> Write(const ChunkWrite& w) = 0;

  // Cuts the inode's chunks to a file of `length` bytes: later chunks are
  // removed, the boundary chunk is shortened (its tail reads as zeros).
  // Atomic with respect to writes of the same inode.
  virtual Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) = 0;

  // Removes every chunk of the inode. OK when there were none. Atomic with
  // respect to writes of the same inode.
  virtual Status Remove(uint64_t inode) = 0;
  // Remove of each inode; every one is tried. Returns the first failure, and
  // adds the inodes that failed to *failed. A store may make the removals
  // durable together (fewer syncs than one by one).
  virtual Status RemoveMany(const std::vector<uint64_t>& inodes, std::vector<uint64_t>* failed) {
    Status first_failure;
    for (uint64_t inode : inodes)
      if (Status st = Remove(inode); !st.ok()) {
        failed->push_back(inode);
        if (first_failure.ok()) first_failure = st;
      }
    return first_failure;
  }

  // Missing chunks of inodes below `inode` read (and partially write) as
  // DATA_LOST from now on. Called at start-up by the node agent.
  void SetLostBelow(uint64_t inode) { lost_below_.store(inode); }
  uint64_t lost_below() const { return lost_below_.load(); }

  StoreStats& stats() { return stats_; }

 protected:
  StoreStats stats_;
  std::atomic<uint64_t> lost_below_{0};
};

// In-memory store. `alignment` emulates the device: reads are widened to it
// internally, exactly as the O_DIRECT store widens them to 4 KiB.
std::unique_ptr<ChunkStore> NewMemoryChunkStore(uint32_t alignment = kBlockSize);

// Test hook for the in-memory store: flips one stored byte without fixing its CRC.
Status FlipStoredByte(ChunkStore* memory_store, uint64_t inode, uint64_t index, uint32_t offset);

class FileEnv;

struct UringOptions {
  unsigned ring_entries = 1024;
  size_t cache_entries = 16384;  // open chunk files with their CRCs kept in memory
  FileEnv* env = nullptr;        // nullptr: the real one
  // First writes of new small chunks go through a per-target journal
  // (journaled_writes.h): one shared sync instead of a file, a rename and
  // three syncs each. 0: no journal.
  uint64_t journal_bytes = 16ull << 20;  // shoal-storage's default: 64 MiB (journal_mib)
  uint32_t journal_max_chunk_bytes = 256u << 10;  // larger chunks go straight to their files
  int64_t journal_apply_delay_ms = 20;
};

// Opens the store of the target directory `dir` (created if missing). Removes
// the pending versions a crash left behind.
Result<std::unique_ptr<ChunkStore>> OpenUringChunkStore(const std::string& dir, UringOptions options = {});

// Test hook for the O_DIRECT store: writes every journaled chunk to its file
// now (journaled_writes.h). OK for any other store.
Status ApplyJournaledWrites(ChunkStore* store);

// Where the O_DIRECT store keeps a chunk, and where its data starts in that file.
std::string ChunkFilePath(const std::string& dir, uint64_t inode, uint64_t index);
uint32_t ChunkHeaderSize(uint32_t chunk_size);

}  // namespace shoal::storage
