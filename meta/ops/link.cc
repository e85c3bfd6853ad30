#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  RETURN_IF_ERROR(CheckName(new_name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  if (a.type() == proto::DIRECTORY) return Error(proto::NOT_PERMITTED, "cannot hard-link a directory");
  // An orphan (unlinked, still open) gets no new name: its chunks are due at its last close.
  if (a.nlink() == 0) return Error(proto::NOT_FOUND, "inode " + std::to_string(ino) + " has been unlinked");
  if (a.nlink() >= 65000) return Error(proto::TOO_MANY_LINKS, "too many links");
  ASSIGN_OR_RETURN(Attr dir, PrepareNewEntry(c, new_parent, new_name));
  a.set_nlink(a.nlink() + 1);
  a.set_ctime_ns(NowNs());
  KvBatch b;
  AddEntry(b, dir, new_name, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

}  // namespace shoal::meta
