#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  auto existing = FindEntry(parent, name);
  if (existing.ok()) return Error(proto::ALREADY_EXISTS, "'" + name + "' exists");
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::DIRECTORY, mode, c);
  a.set_nlink(2);
  a.set_parent(parent);
  *a.mutable_dir_layout() = dir.dir_layout();  // new directories inherit the default layout
  PutInode(b, a);
  b.Put(Cf::kDirents, DirentKey(parent, name), DirentValue(ino, proto::DIRECTORY));
  dir.set_nlink(dir.nlink() + 1);
  dir.set_mtime_ns(a.mtime_ns());
  dir.set_ctime_ns(a.mtime_ns());
  PutInode(b, dir);
  RETURN_IF_ERROR(kv_->Write(b));
  return a;
}

}  // namespace shoal::meta
