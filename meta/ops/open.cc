#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Open(const Caller& c, uint64_t ino, uint32_t flags) {
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  int mask = OpenAccess(flags);
  if (a.type() == proto::DIRECTORY && (mask & W_OK)) return Error(proto::IS_DIRECTORY, "cannot open a directory for writing");
  RETURN_IF_ERROR(CheckAccess(a, c, mask));
  return a;
}

}  // namespace shoal::meta
