#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                               bool exclusive) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  auto existing = FindEntry(parent, name);
  if (existing.ok()) {
    if (exclusive) return Error(proto::ALREADY_EXISTS, "'" + name + "' exists");
    RETURN_IF_ERROR(CheckAccess(dir, c, X_OK));
    ASSIGN_OR_RETURN(Attr a, LoadInode(*existing));
    if (a.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "'" + name + "' is a directory");
    return a;
  }
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::REGULAR, mode, c);
  ASSIGN_OR_RETURN(*a.mutable_layout(), PlaceFile(dir, ino));
  PutInode(b, a);
  b.Put(Cf::kDirents, DirentKey(parent, name), DirentValue(ino, proto::REGULAR));
  dir.set_mtime_ns(a.mtime_ns());
  dir.set_ctime_ns(a.mtime_ns());
  PutInode(b, dir);
  RETURN_IF_ERROR(kv_->Write(b));
  return a;
}

}  // namespace shoal::meta
