#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::Unlink(const Caller& c, uint64_t parent, const std::string& name) {
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(auto found, PrepareRemoval(c, parent, name));
  auto& [dir, victim] = found;
  if (victim.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "'" + name + "' is a directory");
  KvBatch b;
  b.Delete(Cf::kDirents, DirentKey(parent, name));
  DropLink(b, victim);
  int64_t now = NowNs();
  dir.set_mtime_ns(now);
  dir.set_ctime_ns(now);
  PutInode(b, dir);
  return Commit(b, 0);
}

}  // namespace shoal::meta
