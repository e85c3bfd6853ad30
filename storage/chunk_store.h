// The chunk store seam: the chunks of one target.
//
// A chunk is identified by (inode, index) and holds up to `chunk_size` bytes.
// A chunk never written, and any byte past what was written, reads as zeros.
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
#include <vector>

#include "common/aligned_buffer.h"
#include "common/status.h"

namespace shoal::storage {

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
  // `length` bytes owned by `buffer`.
  Status status;
  const uint8_t* data = nullptr;
  AlignedBuffer buffer;
};

struct StoreStats {
  std::atomic<uint64_t> reads{0}, read_bytes{0}, writes{0}, write_bytes{0}, checksum_errors{0}, io_errors{0};
};

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  // Starts every op of `ops` (which must outlive the call of `done`) and calls
  // `done` once, after all of them finished, on an internal thread or inline.
  virtual void Read(std::vector<ReadOp*> ops, std::function<void()> done) = 0;

  // Stores data at `offset` of the chunk; durable when it returns OK.
  // INVALID_ARGUMENT when the range leaves the chunk or chunk_size is invalid.
  virtual Status Write(uint64_t inode, uint64_t index, uint32_t offset, const uint8_t* data, uint32_t length,
                       uint32_t chunk_size) = 0;

  // Cuts the inode's chunks to a file of `length` bytes: later chunks are
  // removed, the boundary chunk is shortened (its tail reads as zeros).
  virtual Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) = 0;

  // Removes every chunk of the inode. OK when there were none.
  virtual Status Remove(uint64_t inode) = 0;

  virtual void SetLostBelow(uint64_t inode) { (void)inode; }

  StoreStats& stats() { return stats_; }

 protected:
  StoreStats stats_;
};

// In-memory store. `alignment` emulates the device: reads are widened to it
// internally, exactly as the O_DIRECT store widens them to 4 KiB.
std::unique_ptr<ChunkStore> NewMemoryChunkStore(uint32_t alignment = kBlockSize);

// Test hook for the in-memory store: flips one stored byte without fixing its CRC.
Status FlipStoredByte(ChunkStore* memory_store, uint64_t inode, uint64_t index, uint32_t offset);

struct UringOptions {
  unsigned ring_entries = 1024;
  size_t cache_entries = 16384;  // open chunk files with their CRCs kept in memory
};

// Opens the store of the target directory `dir` (created if missing).
Result<std::unique_ptr<ChunkStore>> OpenUringChunkStore(const std::string& dir, UringOptions options = {});

// Where the O_DIRECT store keeps a chunk, and where its data starts in that file.
std::string ChunkFilePath(const std::string& dir, uint64_t inode, uint64_t index);
uint32_t ChunkHeaderSize(uint32_t chunk_size);

}  // namespace shoal::storage
