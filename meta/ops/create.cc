#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                               bool exclusive) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  auto existing = FindEntry(parent, name);
  if (existing.ok() && !exclusive) {
    // open(O_CREAT) of an existing file opens it: searching the directory is enough.
    ASSIGN_OR_RETURN(Attr parent_dir, LoadDir(parent));
    RETURN_IF_ERROR(CheckAccess(parent_dir, c, X_OK));
    ASSIGN_OR_RETURN(Attr a, LoadInode(*existing));
    if (a.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "'" + name + "' is a directory");
    return a;
  }
  auto dir = PrepareNewEntry(c, parent, name);
  if (!dir.ok()) return dir.status();
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::REGULAR, mode, c);
  ASSIGN_OR_RETURN(*a.mutable_layout(), PlaceFile(*dir, ino));
  AddEntry(b, *dir, name, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

}  // namespace shoal::meta
