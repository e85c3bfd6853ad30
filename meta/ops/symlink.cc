#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Symlink(const Caller& c, uint64_t parent, const std::string& name, const std::string& target) {
  RETURN_IF_ERROR(CheckName(name));
  if (target.empty() || target.size() > kMaxSymlinkLen)
    return Error(proto::NAME_TOO_LONG, "symlink target must be 1 to 4095 bytes");
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, PrepareNewEntry(c, parent, name));
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  Attr a = NewAttr(ino, proto::SYMLINK, 0777, c, &dir);
  a.set_symlink_target(target);
  a.set_size(target.size());
  AddEntry(b, dir, name, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

}  // namespace shoal::meta
