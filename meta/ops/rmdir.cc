#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::Rmdir(const Caller& c, uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  ASSIGN_OR_RETURN(uint64_t ino, FindEntry(parent, name));
  ASSIGN_OR_RETURN(Attr victim, LoadInode(ino));
  if (victim.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, "'" + name + "' is not a directory");
  RETURN_IF_ERROR(CheckSticky(dir, victim, c));
  ASSIGN_OR_RETURN(bool empty, DirIsEmpty(ino));
  if (!empty) return Error(proto::NOT_EMPTY, "'" + name + "' is not empty");
  KvBatch b;
  b.Delete(Cf::kDirents, DirentKey(parent, name));
  b.Delete(Cf::kInodes, InodeKey(ino));
  int64_t now = NowNs();
  dir.set_nlink(dir.nlink() - 1);
  dir.set_mtime_ns(now);
  dir.set_ctime_ns(now);
  PutInode(b, dir);
  return kv_->Write(b);
}

}  // namespace shoal::meta
