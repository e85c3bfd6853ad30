#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::SetAttr(const proto::SetAttrReq& req) {
  std::lock_guard<std::mutex> l(write_mu_);
  const Caller& c = req.caller();
  ASSIGN_OR_RETURN(Attr a, LoadInode(req.ino()));
  const Attr stored = a;  // what check_only answers
  bool owner = c.uid() == 0 || c.uid() == a.uid();
  int64_t now = NowNs();
  if (req.set_mode()) {
    uint32_t mode = req.mode() & 07777;
    const uint32_t setid = S_ISUID | S_ISGID;
    // Clearing set-id bits and nothing else is what a write or truncate by
    // anyone who may write does (the kernel sends it as a mode change).
    bool only_clears_setid = (mode & ~setid) == (a.mode() & ~setid) && (mode & setid & ~a.mode()) == 0;
    if (!owner && !(only_clears_setid && CheckAccess(a, c, W_OK).ok()))
      return Error(proto::NOT_PERMITTED, "only the owner may change the mode");
    // A non-root caller outside the file's group cannot set the setgid bit.
    if (c.uid() != 0 && !InGroup(c, a.gid())) mode &= ~static_cast<uint32_t>(S_ISGID);
    a.set_mode(mode);
  }
  if (req.set_uid() && req.uid() != a.uid()) {
    if (c.uid() != 0) return Error(proto::NOT_PERMITTED, "only root may change the owner");
    a.set_uid(req.uid());
  }
  if (req.set_gid() && req.gid() != a.gid()) {
    if (c.uid() != 0 && !(c.uid() == a.uid() && InGroup(c, req.gid())))
      return Error(proto::NOT_PERMITTED, "not allowed to change the group");
    a.set_gid(req.gid());
  }
  // Linux (chown_common): a chown, by anyone, of anything but a directory
  // drops S_ISUID, and S_ISGID when it marks a setgid executable or the
  // caller could not have set it.
  if ((req.set_uid() || req.set_gid()) && a.type() != proto::DIRECTORY) KillSuid(a, c, /*by_root_too=*/true);
  if (req.set_size()) {
    if (a.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "cannot truncate a directory");
    if (a.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, "cannot truncate this file type");
    RETURN_IF_ERROR(CheckAccess(a, c, W_OK));
    a.set_size(req.size());
    a.set_mtime_ns(now);
    KillSuid(a, c, /*by_root_too=*/false);  // as a write does
  }
  for (auto [set, value, field] : {std::tuple{req.set_atime(), req.atime_ns(), 0}, std::tuple{req.set_mtime(), req.mtime_ns(), 1}}) {
    if (!set) continue;
    if (value < 0) {  // "now": the owner or anyone who may write
      if (!owner) RETURN_IF_ERROR(CheckAccess(a, c, W_OK));
      value = now;
    } else if (!owner) {
      return Error(proto::NOT_PERMITTED, "only the owner may set explicit times");
    }
    if (field == 0) a.set_atime_ns(value);
    else a.set_mtime_ns(value);
  }
  if (req.check_only()) return stored;  // every check above passed; nothing changes
  a.set_ctime_ns(now);
  return CommitInode(a);
}

}  // namespace shoal::meta
