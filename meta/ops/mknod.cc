#include <unistd.h>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::Mknod(const Caller& c, uint64_t parent, const std::string& name, proto::FileType type,
                              uint32_t mode, uint64_t rdev) {
  switch (type) {
    case proto::REGULAR:
      // mknod(S_IFREG) makes an empty file that can be written like any other.
      return Create(c, parent, name, mode, true, O_WRONLY);
    case proto::CHAR_DEVICE:
    case proto::BLOCK_DEVICE:
      break;
    case proto::FIFO:
    case proto::SOCKET:
      rdev = 0;
      break;
    default:
      return Error(proto::INVALID_ARGUMENT, "mknod makes regular files, FIFOs, devices and sockets only");
  }
  RETURN_IF_ERROR(CheckName(name));
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr dir, PrepareNewEntry(c, parent, name));
  // Linux asks for CAP_MKNOD (after EEXIST and the directory's EACCES); root
  // is the only caller holding it here.
  if ((type == proto::CHAR_DEVICE || type == proto::BLOCK_DEVICE) && c.uid() != 0)
    return Error(proto::NOT_PERMITTED, "only root may create device nodes");
  KvBatch b;
  ASSIGN_OR_RETURN(uint64_t ino, AllocateIno(b));
  // No layout: a special file has no data on storage (the kernel serves its I/O).
  Attr a = NewAttr(ino, type, mode, c, &dir);
  a.set_rdev(rdev);
  AddEntry(b, dir, name, a);
  RETURN_IF_ERROR(Commit(b, ino));
  return a;
}

}  // namespace shoal::meta
