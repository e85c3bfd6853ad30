#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                         const std::string& new_name, bool no_replace) {
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckName(new_name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr src_dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(src_dir, c, W_OK | X_OK));
  Attr other_dir;
  const bool same_dir = parent == new_parent;
  if (!same_dir) {
    ASSIGN_OR_RETURN(other_dir, LoadDir(new_parent));
    RETURN_IF_ERROR(CheckAccess(other_dir, c, W_OK | X_OK));
  }
  Attr& dst_dir = same_dir ? src_dir : other_dir;

  ASSIGN_OR_RETURN(uint64_t src_ino, FindEntry(parent, name));
  ASSIGN_OR_RETURN(Attr src, LoadInode(src_ino));
  RETURN_IF_ERROR(CheckSticky(src_dir, src, c));
  if (same_dir && name == new_name) return Status::OK();
  const bool is_dir = src.type() == proto::DIRECTORY;

  // A directory may not move under itself: walk up from the destination.
  if (is_dir && !same_dir) {
    for (uint64_t p = new_parent;; ) {
      if (p == src_ino) return Error(proto::INVALID_ARGUMENT, "cannot move a directory under itself");
      if (p == kRootIno) break;
      ASSIGN_OR_RETURN(Attr up, LoadInode(p));
      p = up.parent();
    }
  }

  KvBatch b;
  int64_t now = NowNs();
  auto existing = FindEntry(new_parent, new_name);
  if (existing.ok()) {
    if (no_replace) return Error(proto::ALREADY_EXISTS, "'" + new_name + "' exists");
    if (*existing == src_ino) return Status::OK();  // two links to one file: nothing to do
    ASSIGN_OR_RETURN(Attr victim, LoadInode(*existing));
    RETURN_IF_ERROR(CheckSticky(dst_dir, victim, c));
    if (is_dir) {
      if (victim.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, "'" + new_name + "' is not a directory");
      ASSIGN_OR_RETURN(bool empty, DirIsEmpty(victim.ino()));
      if (!empty) return Error(proto::NOT_EMPTY, "'" + new_name + "' is not empty");
      dst_dir.set_nlink(dst_dir.nlink() - 1);
    } else if (victim.type() == proto::DIRECTORY) {
      return Error(proto::IS_DIRECTORY, "'" + new_name + "' is a directory");
    }
    DropLink(b, victim);
  } else if (existing.status().code() != proto::NOT_FOUND) {
    return existing.status();
  }

  // A directory that changes parent rewrites its "..": Linux asks for write
  // permission on it (EACCES), after the checks above.
  if (is_dir && !same_dir) RETURN_IF_ERROR(CheckAccess(src, c, W_OK));
  b.Delete(Cf::kDirents, DirentKey(parent, name));
  b.Put(Cf::kDirents, DirentKey(new_parent, new_name), DirentValue(src_ino, src.type()));
  if (is_dir && !same_dir) {
    src.set_parent(new_parent);
    src_dir.set_nlink(src_dir.nlink() - 1);
    dst_dir.set_nlink(dst_dir.nlink() + 1);
  }
  src.set_ctime_ns(now);
  PutInode(b, src);
  src_dir.set_mtime_ns(now);
  src_dir.set_ctime_ns(now);
  PutInode(b, src_dir);
  if (!same_dir) {
    dst_dir.set_mtime_ns(now);
    dst_dir.set_ctime_ns(now);
    PutInode(b, dst_dir);
  }
  return Commit(b, 0);
}

}  // namespace shoal::meta
