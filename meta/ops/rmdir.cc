#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::Rmdir(const Caller& c, uint64_t parent, const std::string& name) {
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(auto found, PrepareRemoval(c, parent, name));
  auto& [dir, victim] = found;
  if (victim.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, "'" + name + "' is not a directory");
  ASSIGN_OR_RETURN(bool empty, DirIsEmpty(victim.ino()));
  if (!empty) return Error(proto::NOT_EMPTY, "'" + name + "' is not empty");
  KvBatch b;
  b.Delete(Cf::kDirents, DirentKey(parent, name));
  DeleteInode(b, victim);
  AdjustInodeCount(b, -1);
  int64_t now = NowNs();
  dir.set_nlink(dir.nlink() - 1);
  dir.set_mtime_ns(now);
  dir.set_ctime_ns(now);
  PutInode(b, dir);
  return Commit(b, 0);
}

}  // namespace shoal::meta
