#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                               bool exclusive, uint32_t flags) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  auto existing = FindEntry(parent, name);
  if (existing.ok() && !exclusive) {
    // open(O_CREAT) of an existing file opens it: searching the directory,
    // then the file's own permissions for the access asked (as open(2)).
    ASSIGN_OR_RETURN(Attr parent_dir, LoadDir(parent));
    RETURN_IF_ERROR(CheckAccess(parent_dir, c, X_OK));
    ASSIGN_OR_RETURN(Attr a, LoadInode(*existing));
    int mask = OpenAccess(flags);
    if (a.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "'" + name + "' is a directory");
    RETURN_IF_ERROR(CheckAccess(a, c, mask));
    return a;
  }
  auto dir = PrepareNewEntry(c, parent, name);
  if (!dir.ok()) return dir.status();
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::REGULAR, mode, c, &*dir);
  ASSIGN_OR_RETURN(*a.mutable_layout(), PlaceFile(*dir, ino));
  AddEntry(b, *dir, name, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

}  // namespace shoal::meta
