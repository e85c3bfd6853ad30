#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Symlink(const Caller& c, uint64_t parent, const std::string& name, const std::string& target) {
  RETURN_IF_ERROR(CheckName(name));
  if (target.empty() || target.size() > kMaxSymlinkLen)
    return Error(proto::NAME_TOO_LONG, "symlink target must be 1 to 4095 bytes");
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  auto existing = FindEntry(parent, name);
  if (existing.ok()) return Error(proto::ALREADY_EXISTS, "'" + name + "' exists");
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::SYMLINK, 0777, c);
  a.set_symlink_target(target);
  a.set_size(target.size());
  PutInode(b, a);
  b.Put(Cf::kDirents, DirentKey(parent, name), DirentValue(ino, proto::SYMLINK));
  dir.set_mtime_ns(a.mtime_ns());
  dir.set_ctime_ns(a.mtime_ns());
  PutInode(b, dir);
  RETURN_IF_ERROR(kv_->Write(b));
  return a;
}

}  // namespace shoal::meta
