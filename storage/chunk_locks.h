// Who may change a chunk when: writes of one inode run side by side (shared
// inode lock) but one at a time per chunk (chunk lock); truncate and remove
// take the inode lock exclusively, so each is atomic with respect to every
// write of that inode. Reads take no lock: they read a committed file, which
// is never modified in place (the one exception: a read that finds a listed
// chunk's file missing checks again under the locks, uring_chunk_store.cc).
//
// Locks are striped (a fixed array hashed by key): two inodes may share a
// stripe, which only costs concurrency. Lock order: inode before chunk.
#pragma once

#include <cstdint>
#include <mutex>
#include <shared_mutex>

namespace shoal::storage {

class ChunkLocks {
 public:
  std::shared_mutex& Inode(uint64_t inode) { return inodes_[Mix(inode) % kStripes]; }
  std::mutex& Chunk(uint64_t inode, uint64_t index) { return chunks_[Mix(inode ^ Mix(index + 1)) % kStripes]; }

 private:
  static constexpr size_t kStripes = 256;
  static uint64_t Mix(uint64_t x) { return (x * 0x9E3779B97F4A7C15ull) >> 32; }
  std::shared_mutex inodes_[kStripes];
  std::mutex chunks_[kStripes];
};

}  // namespace shoal::storage
