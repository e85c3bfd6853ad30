#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::UpdateLength(uint64_t ino, uint64_t length, const Caller* writer) {
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  if (a.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, "not a regular file");
  a.set_size(std::max(a.size(), length));
  int64_t now = NowNs();
  a.set_mtime_ns(now);
  a.set_ctime_ns(now);
  if (writer) KillSuid(a, *writer, /*by_root_too=*/false);
  return CommitInode(a);
}

}  // namespace shoal::meta
