#include "storage/chunk_file_cache.h"

namespace shoal::storage {

ChunkFileCache::ChunkFileCache(size_t capacity)
    : per_shard_capacity_(std::max<size_t>(1, capacity / kShards)), shards_(kShards) {}

std::shared_ptr<const ChunkFile> ChunkFileCache::Lookup(uint64_t inode, uint64_t index) {
  Shard& s = ShardOf(inode, index);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(Key{inode, index});
  if (it == s.map.end()) return nullptr;
  s.lru.splice(s.lru.begin(), s.lru, it->second.lru);
  return it->second.file;
}

ChunkFileCache::Ticket ChunkFileCache::BeginMiss(uint64_t inode, uint64_t index) {
  Shard& s = ShardOf(inode, index);
  std::lock_guard<std::mutex> l(s.mu);
  return Ticket{s.generation};
}

void ChunkFileCache::InsertIfCurrent(uint64_t inode, uint64_t index, Ticket t, std::shared_ptr<const ChunkFile> f) {
  Shard& s = ShardOf(inode, index);
  std::lock_guard<std::mutex> l(s.mu);
  if (s.generation != t.generation) return;  // a mutation finished since the file was opened
  if (s.map.count(Key{inode, index})) return;  // a newer or equal entry got there first
  PutLocked(s, Key{inode, index}, std::move(f));
}

void ChunkFileCache::Install(uint64_t inode, uint64_t index, std::shared_ptr<const ChunkFile> f) {
  Shard& s = ShardOf(inode, index);
  std::lock_guard<std::mutex> l(s.mu);
  ++s.generation;
  PutLocked(s, Key{inode, index}, std::move(f));
}

void ChunkFileCache::Erase(uint64_t inode, uint64_t index) {
  Shard& s = ShardOf(inode, index);
  std::lock_guard<std::mutex> l(s.mu);
  ++s.generation;
  auto it = s.map.find(Key{inode, index});
  if (it == s.map.end()) return;
  s.lru.erase(it->second.lru);
  s.map.erase(it);
}

void ChunkFileCache::PutLocked(Shard& s, const Key& k, std::shared_ptr<const ChunkFile> f) {
  auto it = s.map.find(k);
  if (it != s.map.end()) {
    it->second.file = std::move(f);
    s.lru.splice(s.lru.begin(), s.lru, it->second.lru);
    return;
  }
  if (s.map.size() >= per_shard_capacity_) {
    s.map.erase(s.lru.back());
    s.lru.pop_back();
  }
  s.lru.push_front(k);
  s.map.emplace(k, Entry{std::move(f), s.lru.begin()});
}

}  // namespace shoal::storage
