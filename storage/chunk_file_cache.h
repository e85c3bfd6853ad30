// The open-chunk cache: committed chunk files, open, with their parsed headers
// (so a read costs one disk I/O and no header read).
//
// Correctness rule: the cache never holds a file older than the one on disk
// once a mutation has finished. Writers (who hold the chunk's lock) call
// Install after renaming the new version in place and Erase after unlinking.
// A reader that missed takes a ticket *before* it opens the file and inserts
// with InsertIfCurrent, which refuses when any mutation of that shard finished
// in between: check and insert are one critical section, so an old file can
// never replace a newer entry.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "storage/chunk_format.h"
#include "storage/file_env.h"

namespace shoal::storage {

// One committed version of a chunk, open. Immutable once shared: a new
// version is a new file (the old one stays readable through this object).
struct ChunkFile {
  std::unique_ptr<File> file;
  ChunkHeader header;
};

class ChunkFileCache {
 public:
  explicit ChunkFileCache(size_t capacity);

  struct Ticket {
    uint64_t generation;
  };

  std::shared_ptr<const ChunkFile> Lookup(uint64_t inode, uint64_t index);
  Ticket BeginMiss(uint64_t inode, uint64_t index);
  void InsertIfCurrent(uint64_t inode, uint64_t index, Ticket t, std::shared_ptr<const ChunkFile> f);
  // Writers: the new committed file (Install) or its absence (Erase).
  void Install(uint64_t inode, uint64_t index, std::shared_ptr<const ChunkFile> f);
  void Erase(uint64_t inode, uint64_t index);

 private:
  struct Key {
    uint64_t inode, index;
    bool operator==(const Key& o) const { return inode == o.inode && index == o.index; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.inode * 0x9E3779B97F4A7C15ull ^ (k.index * 0xC2B2AE3D27D4EB4Full); }
  };
  struct Entry {
    std::shared_ptr<const ChunkFile> file;
    std::list<Key>::iterator lru;
  };
  struct Shard {
    std::mutex mu;
    uint64_t generation = 0;  // bumped by every finished mutation in the shard
    std::unordered_map<Key, Entry, KeyHash> map;
    std::list<Key> lru;  // front: most recently used
  };
  static constexpr size_t kShards = 64;

  // Shards by chunk, not by inode: one large file's chunks spread over every
  // shard (and its capacity) instead of thrashing one.
  Shard& ShardOf(uint64_t inode, uint64_t index) { return shards_[(KeyHash()(Key{inode, index}) >> 58) % kShards]; }
  void PutLocked(Shard& s, const Key& k, std::shared_ptr<const ChunkFile> f);

  size_t per_shard_capacity_;
  std::vector<Shard> shards_;
};

}  // namespace shoal::storage
