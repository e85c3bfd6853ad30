#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::Unlink(const Caller& c, uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  ASSIGN_OR_RETURN(uint64_t ino, FindEntry(parent, name));
  ASSIGN_OR_RETURN(Attr victim, LoadInode(ino));
  if (victim.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "'" + name + "' is a directory");
  RETURN_IF_ERROR(CheckSticky(dir, victim, c));
  KvBatch b;
  b.Delete(Cf::kDirents, DirentKey(parent, name));
  DropLink(b, victim);
  int64_t now = NowNs();
  dir.set_mtime_ns(now);
  dir.set_ctime_ns(now);
  PutInode(b, dir);
  return kv_->Write(b);
}

}  // namespace shoal::meta
