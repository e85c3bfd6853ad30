// Helpers shared by the metadata operations: keys, names, permissions, inodes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/random_id.h"
#include "meta/meta_store.h"

namespace shoal::meta {

namespace {
const char kNextInoKey[] = "next_ino";
const char kInodeCountKey[] = "inode_count";

void PutBe64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetBe64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}
}  // namespace

MetaStore::MetaStore(Kv* kv, std::function<std::vector<uint32_t>()> chains, const Clock* clock)
    : kv_(kv), chains_(std::move(chains)), clock_(clock), instance_id_(RandomNonZero64()) {}

uint64_t MetaStore::ReadBe64(std::string_view s) { return GetBe64(s); }

std::string MetaStore::InodeKey(uint64_t ino) {
  std::string k;
  PutBe64(k, ino);
  return k;
}

std::string MetaStore::DirentKey(uint64_t parent, const std::string& name) {
  std::string k;
  PutBe64(k, parent);
  k += name;
  return k;
}

std::string MetaStore::DirentValue(uint64_t ino, proto::FileType type) {
  std::string v;
  PutBe64(v, ino);
  v.push_back(static_cast<char>(type));
  return v;
}

bool MetaStore::ParseDirent(std::string_view value, uint64_t* ino, proto::FileType* type) {
  if (value.size() != 9) return false;
  *ino = GetBe64(value);
  *type = static_cast<proto::FileType>(value[8]);
  return true;
}

Status MetaStore::CheckName(const std::string& name) {
  if (name.empty()) return Error(proto::INVALID_ARGUMENT, "empty name");
  if (name.size() > kMaxNameLen) return Error(proto::NAME_TOO_LONG, "name longer than 255 bytes");
  if (name == "." || name == "..") return Error(proto::INVALID_ARGUMENT, "'" + name + "' is not a valid name");
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
    return Error(proto::INVALID_ARGUMENT, "name contains '/' or NUL");
  return Status::OK();
}

Status MetaStore::CheckAccess(const Attr& a, const Caller& c, int mask) {
  if (c.uid() == 0) {
    // Root may search and read/write anything, but executes only what some x bit allows.
    if ((mask & X_OK) && a.type() != proto::DIRECTORY && (a.mode() & 0111) == 0)
      return Error(proto::PERMISSION_DENIED, "no execute bit");
    return Status::OK();
  }
  uint32_t bits;
  if (c.uid() == a.uid()) {
    bits = (a.mode() >> 6) & 7;
  } else if (InGroup(c, a.gid())) {
    bits = (a.mode() >> 3) & 7;
  } else {
    bits = a.mode() & 7;
  }
  if ((bits & mask) != static_cast<uint32_t>(mask))
    return Error(proto::PERMISSION_DENIED, "permission denied on inode " + std::to_string(a.ino()));
  return Status::OK();
}

bool MetaStore::InGroup(const Caller& c, uint32_t gid) {
  return c.gid() == gid || std::find(c.groups().begin(), c.groups().end(), gid) != c.groups().end();
}

void MetaStore::KillSuid(Attr& a, const Caller& c, bool by_root_too) {
  if (a.type() == proto::DIRECTORY || (c.uid() == 0 && !by_root_too)) return;
  uint32_t mode = a.mode() & ~static_cast<uint32_t>(S_ISUID);
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || (c.uid() != 0 && !InGroup(c, a.gid()))))
    mode &= ~static_cast<uint32_t>(S_ISGID);
  a.set_mode(mode);
}

int MetaStore::OpenAccess(uint32_t flags) {
  int mask;
  switch (flags & O_ACCMODE) {
    case O_RDONLY: mask = R_OK; break;
    case O_WRONLY: mask = W_OK; break;
    default: mask = R_OK | W_OK; break;
  }
  if (flags & O_TRUNC) mask |= W_OK;
  return mask;
}

Status MetaStore::CheckSticky(const Attr& dir, const Attr& victim, const Caller& c) {
  if (!(dir.mode() & S_ISVTX) || c.uid() == 0 || c.uid() == dir.uid() || c.uid() == victim.uid())
    return Status::OK();
  return Error(proto::NOT_PERMITTED, "sticky directory: not the owner");
}

int64_t MetaStore::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status MetaStore::Init() {
  RETURN_IF_ERROR(InitNamespace());
  return RestoreOpenFiles();
}

Status MetaStore::InitNamespace() {
  std::lock_guard<std::mutex> l(write_mu_);
  auto next = kv_->Get(Cf::kCluster, kNextInoKey);
  if (next.ok()) {
    next_ino_ = GetBe64(*next);
    auto count = kv_->Get(Cf::kCluster, kInodeCountKey);
    if (count.ok()) {
      inode_count_ = GetBe64(*count);
      return Status::OK();
    }
    if (count.status().code() != proto::NOT_FOUND) return count.status();
    // A namespace from before the counter existed: count once and keep it.
    uint64_t n = 0;
    RETURN_IF_ERROR(kv_->Scan(Cf::kInodes, "", "", [&](std::string_view, std::string_view) {
      ++n;
      return true;
    }));
    KvBatch b;
    inode_count_ = n;
    AdjustInodeCount(b, 0);
    return kv_->Write(b);
  }
  if (next.status().code() != proto::NOT_FOUND) return next.status();
  Caller root;
  Attr a = NewAttr(kRootIno, proto::DIRECTORY, 0755, root);
  a.set_nlink(2);
  a.set_parent(kRootIno);
  a.mutable_dir_layout()->set_chunk_size(kDefaultChunkSize);
  KvBatch b;
  PutInode(b, a);
  AdjustInodeCount(b, 1);
  next_ino_ = kRootIno + 1;
  std::string v;
  PutBe64(v, next_ino_);
  b.Put(Cf::kCluster, kNextInoKey, v);
  return kv_->Write(b);
}

uint64_t MetaStore::NextInode() {
  std::lock_guard<std::mutex> l(write_mu_);
  return next_ino_;
}

Result<Attr> MetaStore::LoadInode(uint64_t ino) {
  auto raw = kv_->Get(Cf::kInodes, InodeKey(ino));
  if (!raw.ok()) {
    if (raw.status().code() == proto::NOT_FOUND) return Error(proto::NOT_FOUND, "no inode " + std::to_string(ino));
    return raw.status();
  }
  Attr a;
  if (!a.ParseFromString(*raw)) return Error(proto::INTERNAL, "corrupt inode " + std::to_string(ino));
  return a;
}

Result<Attr> MetaStore::LoadDir(uint64_t ino) {
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  if (a.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, "inode " + std::to_string(ino) + " is not a directory");
  return a;
}

Result<uint64_t> MetaStore::FindEntry(uint64_t parent, const std::string& name) {
  auto raw = kv_->Get(Cf::kDirents, DirentKey(parent, name));
  if (!raw.ok()) {
    if (raw.status().code() == proto::NOT_FOUND) return Error(proto::NOT_FOUND, "no entry '" + name + "'");
    return raw.status();
  }
  uint64_t ino;
  proto::FileType type;
  if (!ParseDirent(*raw, &ino, &type)) return Error(proto::INTERNAL, "corrupt directory entry '" + name + "'");
  return ino;
}

void MetaStore::PutInode(KvBatch& b, const Attr& a) {
  b.Put(Cf::kInodes, InodeKey(a.ino()), a.SerializeAsString());
  if (a.type() == proto::DIRECTORY) NoteDirWritten(a);
}

void MetaStore::DeleteInode(KvBatch& b, const Attr& a) {
  b.Delete(Cf::kInodes, InodeKey(a.ino()));
  if (a.type() == proto::DIRECTORY) NoteDirRemoved(a.ino());
}

Result<Attr> MetaStore::CommitInode(const Attr& a) {
  KvBatch b;
  PutInode(b, a);
  RETURN_IF_ERROR(Commit(b, a.ino()));
  return a;
}

void MetaStore::AdjustInodeCount(KvBatch& b, int64_t delta) {
  // A batch that then fails to commit leaves the in-memory count off by one
  // until restart: statfs is advisory, and the persisted value stays exact.
  inode_count_ += delta;
  std::string v;
  PutBe64(v, inode_count_);
  b.Put(Cf::kCluster, kInodeCountKey, v);
}

Result<uint64_t> MetaStore::AllocateIno(KvBatch& b) {
  AdjustInodeCount(b, 1);
  uint64_t ino = next_ino_++;
  std::string v;
  PutBe64(v, next_ino_);
  b.Put(Cf::kCluster, kNextInoKey, v);
  return ino;
}

Attr MetaStore::NewAttr(uint64_t ino, proto::FileType type, uint32_t mode, const Caller& c, const Attr* dir) {
  Attr a;
  int64_t now = NowNs();
  a.set_ino(ino);
  a.set_type(type);
  mode &= 07777;
  uint32_t gid = c.gid();
  if (dir && (dir->mode() & S_ISGID)) {
    // BSD group semantics in a setgid directory (Linux inode_init_owner).
    gid = dir->gid();
    if (type == proto::DIRECTORY) mode |= S_ISGID;
  }
  // A setgid executable for a group the creator is not in would hand out
  // that group: Linux strips S_ISGID then (mode_strip_sgid).
  if (type != proto::DIRECTORY && (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && c.uid() != 0 &&
      !InGroup(c, gid))
    mode &= ~static_cast<uint32_t>(S_ISGID);
  a.set_mode(mode);
  a.set_uid(c.uid());
  a.set_gid(gid);
  a.set_nlink(1);
  a.set_atime_ns(now);
  a.set_mtime_ns(now);
  a.set_ctime_ns(now);
  return a;
}

void MetaStore::FreeInode(KvBatch& b, const Attr& victim) {
  DeleteInode(b, victim);
  DropXattrs(b, victim.ino());
  AdjustInodeCount(b, -1);
  if (victim.type() == proto::REGULAR) {
    proto::ReclaimEntry e;
    *e.mutable_layout() = victim.layout();
    e.set_unlinked_at_ms(NowNs() / 1000000);
    b.Put(Cf::kDeleteQueue, InodeKey(victim.ino()), e.SerializeAsString());
  }
}

void MetaStore::DropLink(KvBatch& b, Attr& victim) {
  if (victim.type() == proto::DIRECTORY || victim.nlink() <= 1) {
    if (victim.type() == proto::REGULAR && (InGrace() || HasOpenRecord(victim.ino()))) {
      // Open somewhere (or, in a grace period, maybe: see RecordOpen): the
      // inode stays (nlink 0) until its last release.
      victim.set_nlink(0);
      victim.set_ctime_ns(NowNs());
      PutInode(b, victim);
      b.Put(Cf::kOpenFiles, "z" + InodeKey(victim.ino()), "");
      ++orphans_;
      return;
    }
    FreeInode(b, victim);
    return;
  }
  victim.set_nlink(victim.nlink() - 1);
  victim.set_ctime_ns(NowNs());
  PutInode(b, victim);
}

Result<bool> MetaStore::DirIsEmpty(uint64_t ino) {
  bool empty = true;
  RETURN_IF_ERROR(kv_->Scan(Cf::kDirents, InodeKey(ino), "", [&](std::string_view, std::string_view) {
    empty = false;
    return false;
  }));
  return empty;
}

Result<proto::Layout> MetaStore::PlaceFile(const Attr& parent, uint64_t ino) {
  std::vector<uint32_t> chains = chains_();
  if (chains.empty()) return Error(proto::UNAVAILABLE, "no storage chains registered");
  const proto::Layout& def = parent.dir_layout();
  uint32_t n = static_cast<uint32_t>(chains.size());
  uint32_t stripe = def.stripe_width() ? std::min(def.stripe_width(), n) : std::min(kDefaultMaxStripe, n);
  proto::Layout layout;
  layout.set_chunk_size(def.chunk_size() ? def.chunk_size() : kDefaultChunkSize);
  layout.set_stripe_width(stripe);
  // Rotate the starting chain by inode number: deterministic, and consecutive
  // files begin on different chains so that load spreads.
  uint32_t start = static_cast<uint32_t>(ino % n);
  for (uint32_t k = 0; k < stripe; ++k) layout.add_chains(chains[(start + k) % n]);
  return layout;
}

Result<Attr> MetaStore::PrepareNewEntry(const Caller& c, uint64_t parent, const std::string& name) {
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  // Linux's order: search permission to look the name up, EEXIST, then
  // write permission to add it.
  RETURN_IF_ERROR(CheckAccess(dir, c, X_OK));
  auto existing = FindEntry(parent, name);
  if (existing.ok()) return Error(proto::ALREADY_EXISTS, "'" + name + "' exists");
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK));
  return dir;
}

void MetaStore::AddEntry(KvBatch& b, Attr& dir, const std::string& name, const Attr& child) {
  PutInode(b, child);
  b.Put(Cf::kDirents, DirentKey(dir.ino(), name), DirentValue(child.ino(), child.type()));
  dir.set_mtime_ns(child.ctime_ns());
  dir.set_ctime_ns(child.ctime_ns());
  PutInode(b, dir);
}

Result<std::pair<Attr, Attr>> MetaStore::PrepareRemoval(const Caller& c, uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(Attr dir, LoadDir(parent));
  RETURN_IF_ERROR(CheckAccess(dir, c, W_OK | X_OK));
  ASSIGN_OR_RETURN(uint64_t ino, FindEntry(parent, name));
  ASSIGN_OR_RETURN(Attr victim, LoadInode(ino));
  RETURN_IF_ERROR(CheckSticky(dir, victim, c));
  return std::make_pair(std::move(dir), std::move(victim));
}

uint64_t MetaStore::CountInodes() const { return inode_count_.load(); }

}  // namespace shoal::meta
