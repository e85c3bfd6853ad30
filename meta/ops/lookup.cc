#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Lookup(const Caller& c, uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, X_OK));
  ASSIGN_OR_RETURN(uint64_t ino, FindEntry(parent, name));
  return LoadInode(ino);
}

Result<Attr> MetaStore::GetAttr(uint64_t ino) { return LoadInode(ino); }

Result<std::string> MetaStore::Readlink(uint64_t ino) {
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  if (a.type() != proto::SYMLINK) return Error(proto::INVALID_ARGUMENT, "not a symbolic link");
  return a.symlink_target();
}

}  // namespace shoal::meta
