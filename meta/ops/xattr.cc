// Extended attributes: one key per attribute in the xattr column family,
// keyed by inode number then name, so an inode's attributes are one prefix.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xattr_name.h"
#include "meta/meta_store.h"

namespace shoal::meta {

Status MetaStore::CheckXattrAccess(const Attr& a, const Caller& c, const std::string& name, bool write) {
  RETURN_IF_ERROR(CheckStoredXattrName(name));
  if (ClassifyXattr(name) == XattrNamespace::kTrusted) {
    if (c.uid() != 0)
      return write ? Error(proto::NOT_PERMITTED, "trusted. attributes are root's")
                   : Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
    return Status::OK();
  }
  // user.*: their permissions are the file's, which only regular files and
  // directories have in a meaningful sense (a device's belong to the device).
  if (a.type() != proto::REGULAR && a.type() != proto::DIRECTORY)
    return write ? Error(proto::NOT_PERMITTED, "user. attributes only on regular files and directories")
                 : Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
  if (write && a.type() == proto::DIRECTORY && (a.mode() & S_ISVTX) && c.uid() != 0 && c.uid() != a.uid())
    return Error(proto::NOT_PERMITTED, "sticky directory: only its owner sets user. attributes");
  return CheckAccess(a, c, write ? W_OK : R_OK);
}

Status MetaStore::SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                           uint32_t flags) {
  if (value.size() > kXattrValueMax) return Error(proto::ARG_TOO_BIG, "extended attribute value over 64 KiB");
  if (flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE))
    return Error(proto::INVALID_ARGUMENT, "unknown setxattr flags");
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  RETURN_IF_ERROR(CheckXattrAccess(a, c, name, /*write=*/true));
  // The inode's names must stay listable in one 64 KiB listxattr reply.
  bool exists = false;
  size_t list_bytes = 0;
  RETURN_IF_ERROR(kv_->Scan(Cf::kXattrs, InodeKey(ino), "", [&](std::string_view k, std::string_view) {
    std::string_view n = k.substr(8);
    if (n == name) exists = true;
    else list_bytes += n.size() + 1;
    return true;
  }));
  if ((flags & XATTR_CREATE) && exists) return Error(proto::ALREADY_EXISTS, "attribute " + name + " exists");
  if ((flags & XATTR_REPLACE) && !exists) return Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
  if (list_bytes + name.size() + 1 > kXattrListMax)
    return Error(proto::NO_SPACE, "the inode's extended attribute names would exceed 64 KiB");
  KvBatch b;
  b.Put(Cf::kXattrs, DirentKey(ino, name), value);
  a.set_ctime_ns(NowNs());
  PutInode(b, a);
  return Commit(b, ino);
}

Result<std::string> MetaStore::GetXattr(const Caller& c, uint64_t ino, const std::string& name) {
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  RETURN_IF_ERROR(CheckXattrAccess(a, c, name, /*write=*/false));
  auto v = kv_->Get(Cf::kXattrs, DirentKey(ino, name));
  if (!v.ok() && v.status().code() == proto::NOT_FOUND) return Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
  return v;
}

Result<std::vector<std::string>> MetaStore::ListXattr(const Caller& c, uint64_t ino) {
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  (void)a;  // listing needs only the path search the kernel has done
  std::vector<std::string> names;
  RETURN_IF_ERROR(kv_->Scan(Cf::kXattrs, InodeKey(ino), "", [&](std::string_view k, std::string_view) {
    std::string_view n = k.substr(8);
    if (ClassifyXattr(n) != XattrNamespace::kTrusted || c.uid() == 0) names.emplace_back(n);
    return true;
  }));
  return names;
}

Status MetaStore::RemoveXattr(const Caller& c, uint64_t ino, const std::string& name) {
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  RETURN_IF_ERROR(CheckXattrAccess(a, c, name, /*write=*/true));
  auto v = kv_->Get(Cf::kXattrs, DirentKey(ino, name));
  if (!v.ok()) {
    if (v.status().code() == proto::NOT_FOUND) return Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
    return v.status();
  }
  KvBatch b;
  b.Delete(Cf::kXattrs, DirentKey(ino, name));
  a.set_ctime_ns(NowNs());
  PutInode(b, a);
  return Commit(b, ino);
}

void MetaStore::DropXattrs(KvBatch& b, uint64_t ino) {
  Status st = kv_->Scan(Cf::kXattrs, InodeKey(ino), "", [&](std::string_view k, std::string_view) {
    b.Delete(Cf::kXattrs, std::string(k));
    return true;
  });
  // Inode numbers are never reused, so attributes a failed scan leaves behind
  // belong to nobody and are never read: wasted space, not wrong answers.
  if (!st.ok()) LOG_WARN("inode {}: extended attributes not dropped: {}", ino, st.ToString());
}

}  // namespace shoal::meta
