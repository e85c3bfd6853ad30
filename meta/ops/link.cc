#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  RETURN_IF_ERROR(CheckName(new_name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  if (a.type() == proto::DIRECTORY) return Error(proto::NOT_PERMITTED, "cannot hard-link a directory");
  if (a.nlink() >= 65000) return Error(proto::TOO_MANY_LINKS, "too many links");
  ASSIGN_OR_RETURN(Attr dir, LoadDir(new_parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  auto existing = FindEntry(new_parent, new_name);
  if (existing.ok()) return Error(proto::ALREADY_EXISTS, "'" + new_name + "' exists");
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  int64_t now = NowNs();
  a.set_nlink(a.nlink() + 1);
  a.set_ctime_ns(now);
  dir.set_mtime_ns(now);
  dir.set_ctime_ns(now);
  KvBatch b;
  PutInode(b, a);
  PutInode(b, dir);
  b.Put(Cf::kDirents, DirentKey(new_parent, new_name), DirentValue(ino, a.type()));
  RETURN_IF_ERROR(kv_->Write(b));
  return a;
}

}  // namespace shoal::meta
