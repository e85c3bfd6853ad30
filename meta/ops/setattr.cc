#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/log.h"
#include "meta/meta_store.h"

namespace shoal::meta {

namespace {
// Truncate intents live in Cf::kOpenFiles with the client's other state:
// 't' client check-request -> ctime of the file when authorised (8 bytes) +
// the authorised request.
std::string IntentKey(uint64_t client_id, uint64_t request_id) {
  return "t" + MetaStore::InodeKey(client_id) + MetaStore::InodeKey(request_id);
}
bool HasRid(const proto::SetAttrReq& req) { return req.rid().client_id() != 0 && req.rid().request_id() != 0; }
}  // namespace

Result<Attr> MetaStore::SetAttr(const proto::SetAttrReq& req) {
  std::lock_guard<std::mutex> l(write_mu_);
  KvBatch b;
  if (req.intent() != 0 && req.rid().client_id() != 0) {
    // The commit of a size change authorised earlier (check_only): applied
    // as authorised then, whatever the caller's rights are now - storage has
    // already cut the chunks.
    std::string key = IntentKey(req.rid().client_id(), req.intent());
    auto raw = kv_->Get(Cf::kOpenFiles, key);
    if (raw.ok() && raw->size() > 8) {
      proto::SetAttrReq authorised;
      if (!authorised.ParseFromArray(raw->data() + 8, static_cast<int>(raw->size() - 8)))
        return Error(proto::INTERNAL, "corrupt truncate intent");
      b.Delete(Cf::kOpenFiles, key);
      ASSIGN_OR_RETURN(Attr a, LoadInode(authorised.ino()));
      RETURN_IF_ERROR(ApplySetAttr(authorised, a, /*authorised=*/true));
      PutInode(b, a);
      RETURN_IF_ERROR(Commit(b, a.ino()));
      return a;
    }
    if (!raw.ok() && raw.status().code() != proto::NOT_FOUND) return raw.status();
    // No intent (its session ended and applied it, or none was made): check as usual.
  }
  ASSIGN_OR_RETURN(Attr a, LoadInode(req.ino()));
  const Attr stored = a;  // what check_only answers
  RETURN_IF_ERROR(ApplySetAttr(req, a, /*authorised=*/false));
  if (req.check_only()) {
    // Every check passed; nothing changes yet. A size change by a client is
    // remembered as an intent, so that its commit cannot be refused by a
    // permission change made after storage cut the chunks.
    if (!req.set_size() || !HasRid(req)) return stored;
    proto::SetAttrReq intent = req;
    intent.clear_check_only();
    intent.clear_rid();
    std::string v = InodeKey(static_cast<uint64_t>(stored.ctime_ns()));
    intent.AppendToString(&v);
    b.Put(Cf::kOpenFiles, IntentKey(req.rid().client_id(), req.rid().request_id()), std::move(v));
    RETURN_IF_ERROR(Commit(b, stored.ino()));  // also opens the session that ends the intent
    return stored;
  }
  PutInode(b, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

void MetaStore::ApplyIntents(KvBatch& b, uint64_t client_id) {
  std::vector<std::pair<std::string, std::string>> found;
  Status st = kv_->Scan(Cf::kOpenFiles, "t" + InodeKey(client_id), "", [&](std::string_view k, std::string_view v) {
    found.emplace_back(std::string(k), std::string(v));
    return true;
  });
  if (!st.ok()) LOG_WARN("truncate intents of client {:016x} unreadable: {}", client_id, st.ToString());
  for (auto& [k, v] : found) {
    b.Delete(Cf::kOpenFiles, k);
    proto::SetAttrReq req;
    if (v.size() <= 8 || !req.ParseFromArray(v.data() + 8, static_cast<int>(v.size() - 8))) continue;
    auto a = LoadInode(req.ino());
    // Changed since it was authorised (its commit, or anything after it): the
    // intent is history. Otherwise its client may have cut chunks and died
    // before the commit: the size follows what storage now holds.
    if (!a.ok() || static_cast<uint64_t>(a->ctime_ns()) != ReadBe64(v)) continue;
    if (ApplySetAttr(req, *a, /*authorised=*/true).ok()) {
      LOG_INFO("inode {}: applied the truncate to {} that client {:016x} left uncommitted", req.ino(), req.size(),
               client_id);
      PutInode(b, *a);
    }
  }
}

Status MetaStore::ApplySetAttr(const proto::SetAttrReq& req, Attr& a, bool authorised) {
  const Caller& c = req.caller();
  bool owner = authorised || c.uid() == 0 || c.uid() == a.uid();
  // A check that an authorised change already passed.
  auto check = [authorised](Status st) { return authorised ? Status::OK() : st; };
  int64_t now = NowNs();
  if (req.set_mode()) {
    uint32_t mode = req.mode() & 07777;
    const uint32_t setid = S_ISUID | S_ISGID;
    // Clearing set-id bits and nothing else is what a write or truncate by
    // anyone who may write does (the kernel sends it as a mode change).
    bool only_clears_setid = (mode & ~setid) == (a.mode() & ~setid) && (mode & setid & ~a.mode()) == 0;
    if (!owner && !(only_clears_setid && check(CheckAccess(a, c, W_OK)).ok()))
      return Error(proto::NOT_PERMITTED, "only the owner may change the mode");
    // A non-root caller outside the file's group cannot set the setgid bit.
    if (c.uid() != 0 && !InGroup(c, a.gid())) mode &= ~static_cast<uint32_t>(S_ISGID);
    a.set_mode(mode);
  }
  if (req.set_uid() && req.uid() != a.uid()) {
    if (c.uid() != 0 && !authorised) return Error(proto::NOT_PERMITTED, "only root may change the owner");
    a.set_uid(req.uid());
  }
  if (req.set_gid() && req.gid() != a.gid()) {
    if (c.uid() != 0 && !authorised && !(c.uid() == a.uid() && InGroup(c, req.gid())))
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
    RETURN_IF_ERROR(check(CheckAccess(a, c, W_OK)));
    a.set_size(req.size());
    a.set_mtime_ns(now);
    KillSuid(a, c, /*by_root_too=*/false);  // as a write does
  }
  for (auto [set, value, field] : {std::tuple{req.set_atime(), req.atime_ns(), 0}, std::tuple{req.set_mtime(), req.mtime_ns(), 1}}) {
    if (!set) continue;
    if (value < 0) {  // "now": the owner or anyone who may write
      if (!owner) RETURN_IF_ERROR(check(CheckAccess(a, c, W_OK)));
      value = now;
    } else if (!owner) {
      return Error(proto::NOT_PERMITTED, "only the owner may set explicit times");
    }
    if (field == 0) a.set_atime_ns(value);
    else a.set_mtime_ns(value);
  }
  a.set_ctime_ns(now);
  return Status::OK();
}

}  // namespace shoal::meta
