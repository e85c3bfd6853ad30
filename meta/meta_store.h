// MetaStore: the namespace (inodes, directory entries, layouts) on a Kv.
// One file per operation under meta/ops/.
//
// Contract:
// - Every mutation is one atomic KvBatch, durable when the call returns OK -
//   or, when the calling thread has a DeferredSync open (kv.h), applied and
//   durable at its Wait(): the mutex below is then not held across the sync.
// - Mutations are serialized by one mutex (their read-check-write must not
//   interleave); lookups, getattr and readdir do not take it.
// - Permission checks follow POSIX with the caller's uid/gid (root bypasses
//   read/write checks). Names: 1–255 bytes, no '/' or NUL, not "." or "..".
// - Errors: NOT_FOUND, ALREADY_EXISTS, NOT_DIRECTORY, IS_DIRECTORY, NOT_EMPTY,
//   NAME_TOO_LONG, INVALID_ARGUMENT, PERMISSION_DENIED (EACCES),
//   NOT_PERMITTED (EPERM), UNAVAILABLE (no chains to place a file on).
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "meta/kv.h"
#include "proto/meta.pb.h"

namespace shoal::meta {

constexpr uint64_t kRootIno = 1;
constexpr uint32_t kDefaultChunkSize = 1 << 20;
constexpr uint32_t kDefaultMaxStripe = 16;
constexpr uint32_t kMaxNameLen = 255;
constexpr uint32_t kMaxSymlinkLen = 4095;

using proto::Attr;
using proto::Caller;

struct DirEntryRow {
  std::string name;
  uint64_t ino;
  proto::FileType type;
  Attr attr;  // filled for readdir-plus
};

class MetaStore {
 public:
  // `chains` returns the ids of the chains new files may be placed on, sorted.
  MetaStore(Kv* kv, std::function<std::vector<uint32_t>()> chains);

  // Creates the root directory on first start.
  Status Init();

  Result<Attr> Lookup(const Caller& c, uint64_t parent, const std::string& name);
  Result<Attr> GetAttr(uint64_t ino);
  // With req.check_only(): every check, no commit; answers the stored attributes.
  Result<Attr> SetAttr(const proto::SetAttrReq& req);
  Result<Attr> Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode, bool exclusive);
  Result<Attr> Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode);
  Result<Attr> Symlink(const Caller& c, uint64_t parent, const std::string& name, const std::string& target);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name);
  Status Unlink(const Caller& c, uint64_t parent, const std::string& name);
  Status Rmdir(const Caller& c, uint64_t parent, const std::string& name);
  Status Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                const std::string& new_name, bool no_replace);
  Result<std::string> Readlink(uint64_t ino);
  // Entries named > start_after, at most `limit`; *eof when none remain.
  Result<std::vector<DirEntryRow>> ReadDir(const Caller& c, uint64_t ino, const std::string& start_after,
                                           uint32_t limit, bool plus, bool* eof);
  Result<Attr> Open(const Caller& c, uint64_t ino, uint32_t flags);
  Result<Attr> UpdateLength(uint64_t ino, uint64_t length);
  Result<Attr> SetLayout(const Caller& c, uint64_t ino, uint32_t chunk_size, uint32_t stripe_width);
  // Live inodes, kept as a counter in the same batches that create and free them.
  uint64_t CountInodes() const;
  // The number the next new inode gets: every inode that exists or ever
  // existed is below it. Takes the mutation lock.
  uint64_t NextInode();

  // The background reclaimer's queue: files whose last link is gone.
  struct Reclaim {
    uint64_t ino;
    proto::Layout layout;
    int64_t unlinked_at_ms;  // wall clock, for people; the grace period is the reclaimer's (on its Clock)
  };
  // At most `max` entries with an inode number above `after_ino`, in inode order.
  Result<std::vector<Reclaim>> PendingReclaims(size_t max, uint64_t after_ino = 0);
  Status FinishReclaim(uint64_t ino);

  // Helpers shared by the operations (ops/common.cc).
  static std::string InodeKey(uint64_t ino);
  static std::string DirentKey(uint64_t parent, const std::string& name);
  static std::string DirentValue(uint64_t ino, proto::FileType type);
  static bool ParseDirent(std::string_view value, uint64_t* ino, proto::FileType* type);
  static Status CheckName(const std::string& name);
  static Status CheckAccess(const Attr& a, const Caller& c, int mask);  // mask of R_OK/W_OK/X_OK
  static int64_t NowNs();

 private:
  Result<Attr> LoadInode(uint64_t ino);
  Result<Attr> LoadDir(uint64_t ino);  // NOT_DIRECTORY when not a directory
  Result<uint64_t> FindEntry(uint64_t parent, const std::string& name);  // NOT_FOUND
  void PutInode(KvBatch& b, const Attr& a);
  // Stores `a` alone, durably, and returns it (attribute-only changes).
  Result<Attr> CommitInode(const Attr& a);
  Result<uint64_t> AllocateIno(KvBatch& b);
  Attr NewAttr(uint64_t ino, proto::FileType type, uint32_t mode, const Caller& c);
  // Drops one link of `victim` (already loaded) into `b`; frees it at zero.
  void DropLink(KvBatch& b, Attr& victim);
  Result<bool> DirIsEmpty(uint64_t ino);
  // For a new entry: loads the parent directory, checks the caller may add
  // to it, and that `name` is free (ALREADY_EXISTS). Requires write_mu_.
  Result<Attr> PrepareNewEntry(const Caller& c, uint64_t parent, const std::string& name);
  // Puts `child`, its entry in `dir` and dir's new times into the batch.
  void AddEntry(KvBatch& b, Attr& dir, const std::string& name, const Attr& child);
  // Loads the entry `name` of `parent` for removal: the caller may remove
  // from the directory and the sticky bit allows it. Requires write_mu_.
  Result<std::pair<Attr, Attr>> PrepareRemoval(const Caller& c, uint64_t parent, const std::string& name);
  Status CheckSticky(const Attr& dir, const Attr& victim, const Caller& c);
  Result<proto::Layout> PlaceFile(const Attr& parent, uint64_t ino);

  Kv* kv_;
  std::function<std::vector<uint32_t>()> chains_;
  std::mutex write_mu_;
  uint64_t next_ino_ = 0;  // guarded by write_mu_
  std::atomic<uint64_t> inode_count_{0};  // written under write_mu_
  void AdjustInodeCount(KvBatch& b, int64_t delta);  // requires write_mu_
};

}  // namespace shoal::meta
