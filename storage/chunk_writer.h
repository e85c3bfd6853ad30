// The write path of the O_DIRECT store: builds a chunk's next version (old
// bytes kept and verified, new bytes applied, every block resealed under a
// fresh CRC32C) as a pending file, makes it durable, and commits it by a
// rename made durable in turn; a chunk's first version is then listed in the
// inventory (chunk_inventory.h, lazily). Nothing is acknowledged before the
// commit is durable.
//
// Thread-safety: the caller holds the chunk's locks (ChunkLocks) for the
// duration of every call; different chunks may be written concurrently.
#pragma once

#include <atomic>
#include <memory>

#include "storage/chunk_file_cache.h"
#include "storage/chunk_inventory.h"
#include "storage/chunk_layout.h"
#include "storage/chunk_store.h"

namespace shoal::storage {

class ChunkWriter {
 public:
  ChunkWriter(const ChunkLayout* layout, ChunkFileCache* cache, ChunkInventory* inventory, StoreStats* stats,
              const ChunkStore* store)
      : layout_(layout), cache_(cache), inventory_(inventory), stats_(stats), store_(store) {}

  // A write (ChunkStore::Write's contract). Returns the committed version.
  Result<uint64_t> Apply(const ChunkWrite& w);
  // Shortens the chunk to `keep` bytes (no-op when missing or not longer).
  Status Cut(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t keep);
  // Unlinks the committed chunk; the caller syncs the inode directory.
  Status Delete(uint64_t inode, uint64_t index);
  // Makes `data` the whole chunk at `version`, unless the chunk already has
  // that version or a later one (then returns that). For journaled chunks.
  // `durable` false: no sync at all and no listing — the new version is at
  // its name (readers see it) but durable only after a ChunkLayout::SyncAll,
  // and then the caller lists it (List). The journal covers it until then.
  Result<uint64_t> Install(uint64_t inode, uint64_t index, uint32_t chunk_size, const uint8_t* data, uint32_t length,
                           uint64_t version, bool durable = true);
  // Lists the chunk in the inventory (lazily durable).
  Status List(uint64_t inode, uint64_t index);
  // The committed version, or nullptr when the file is missing; then `*lost`
  // (optional) says whether the inventory calls that a loss.
  Result<std::shared_ptr<const ChunkFile>> LoadCommitted(uint64_t inode, uint64_t index, uint32_t chunk_size,
                                                         bool* lost = nullptr);

 private:
  // Builds and commits the next version from `cur` (may be null): its first
  // `new_len` bytes, with `length` bytes of `data` at `offset` laid over them.
  // `list`: the chunk is not listed yet (new, or its listing was lost); it is
  // listed once the new version is durable.
  // `version`: 0 for the next one; else it must be the next one, or with
  // `any_newer` just newer than the committed one.
  Result<uint64_t> Rewrite(uint64_t inode, uint64_t index, uint32_t chunk_size, const ChunkFile* cur,
                           uint32_t new_len, uint32_t offset, const uint8_t* data, uint32_t length, uint64_t version,
                           bool list, bool any_newer = false, bool durable = true);

  const ChunkLayout* layout_;
  ChunkFileCache* cache_;
  ChunkInventory* inventory_;
  StoreStats* stats_;
  const ChunkStore* store_;  // for the lost-below mark
};

}  // namespace shoal::storage
