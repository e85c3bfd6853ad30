// Where a target keeps its chunks on disk.
//
//   <dir>/chunks/<ino % 256, 2 hex digits>/<ino, 16 hex digits>/<index>
//
// holds the committed version of a chunk (chunk_format.h: header, then data
// blocks); which chunks were written is kept beside it, in the inventory
// (chunk_inventory.h, <dir>/inventory), so that a missing file is known lost. A write builds the pending version in <dir>/pending/<ino>.<index>
// and renames it over the committed one (one directory to clean after a crash,
// however many inodes the target holds). Names are made durable by syncing their
// directory; everything goes through a FileEnv.
//
// Durability of names: an operation that changed names in a directory marks it
// (NotDurable) and then syncs it. When that sync fails, or the operation fails
// before it, the mark stays, so that a later operation that depends on those
// names (a write into the inode directory, a retried truncate or remove) syncs
// the directory before it is acknowledged, even when it has nothing to change
// itself. Without this, a retry that finds nothing left to do would be
// acknowledged while the first attempt's changes are still not durable.
//
// Thread-safety: const methods are safe from any thread; the caller serialises
// mutations of one inode (see ChunkLocks).
#pragma once

#include <cstdint>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/file_env.h"

namespace shoal::storage {

class ChunkLayout {
 public:
  ChunkLayout(FileEnv* env, std::string dir) : env_(env), dir_(std::move(dir)) {}

  FileEnv* env() const { return env_; }
  const std::string& dir() const { return dir_; }

  std::string ChunkPath(uint64_t inode, uint64_t index) const;
  std::string PendingPath(uint64_t inode, uint64_t index) const;
  std::string InodeDir(uint64_t inode) const;
  std::string ShardDir(uint64_t inode) const;

  // Creates <dir>/chunks and its 256 shard directories durably, checks that the
  // target takes O_DIRECT I/O, and removes pending versions a crash left.
  Status Prepare() const;
  // Creates the inode's directory durably (no-op when present). With
  // `durable` false, the shard is left marked instead (see SyncAll).
  Status EnsureInodeDir(uint64_t inode, bool durable = true) const;
  // Indexes of the inode's committed chunks (empty when it has none).
  Result<std::vector<uint64_t>> ListChunks(uint64_t inode) const;
  // Removes the inode's directory and everything in it, durably.
  Status RemoveInode(uint64_t inode) const;
  // The same, except the last step: the shard is left marked NotDurable, for
  // one SyncIfNotDurable(ShardDir(...)) to cover many inodes of that shard.
  Status UnlinkInode(uint64_t inode) const;

  // Names in `dir` were changed and are not yet durable.
  void NotDurable(const std::string& dir) const;
  // SyncDir of `dir`; clears the marks made before it started when it succeeds.
  Status SyncDir(const std::string& dir) const;
  // Syncs `dir` when it is marked, else nothing.
  Status SyncIfNotDurable(const std::string& dir) const;
  // Makes the whole target durable at once (FileEnv::SyncFileSystem); clears
  // the marks made before it started when it succeeds.
  Status SyncAll() const;

 private:
  Status ProbeDirectIo() const;
  Status RemovePendingVersions() const;

  FileEnv* env_;
  std::string dir_;
  mutable std::mutex durability_mu_;
  mutable uint64_t mark_seq_ = 0;                         // numbers the marks
  mutable std::map<std::string, uint64_t> not_durable_;  // dir -> its latest mark
  mutable std::set<uint64_t> ensuring_;                   // inodes in EnsureInodeDir
  mutable std::condition_variable ensuring_cv_;
};

}  // namespace shoal::storage
