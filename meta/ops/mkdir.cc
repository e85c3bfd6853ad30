#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode) {
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, PrepareNewEntry(c, parent, name));
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  // mkdir(2) takes permission and sticky bits only; S_ISGID comes from a setgid parent.
  Attr a = NewAttr(ino, proto::DIRECTORY, mode & 01777, c, &dir);
  a.set_nlink(2);
  a.set_parent(parent);
  *a.mutable_dir_layout() = dir.dir_layout();  // new directories inherit the default layout
  dir.set_nlink(dir.nlink() + 1);
  AddEntry(b, dir, name, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

}  // namespace shoal::meta
