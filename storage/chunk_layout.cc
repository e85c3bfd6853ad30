#include "storage/chunk_layout.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "common/aligned_buffer.h"
#include "common/log.h"
#include "storage/chunk_store.h"

namespace shoal::storage {
std::string ChunkLayout::ShardDir(uint64_t inode) const {
  char buf[32];
  snprintf(buf, sizeof(buf), "/chunks/%02x", static_cast<unsigned>(inode & 0xff));
  return dir_ + buf;
}

std::string ChunkLayout::InodeDir(uint64_t inode) const {
  char buf[32];
  snprintf(buf, sizeof(buf), "/%016" PRIx64, inode);
  return ShardDir(inode) + buf;
}

std::string ChunkLayout::ChunkPath(uint64_t inode, uint64_t index) const {
  return InodeDir(inode) + "/" + std::to_string(index);
}

std::string ChunkLayout::PendingPath(uint64_t inode, uint64_t index) const {
  return dir_ + "/pending/" + std::to_string(inode) + "." + std::to_string(index);
}

std::string ChunkFilePath(const std::string& dir, uint64_t inode, uint64_t index) {
  return ChunkLayout(nullptr, dir).ChunkPath(inode, index);
}

Status ChunkLayout::Prepare() const {
  RETURN_IF_ERROR(MakeDirsDurably(env_, dir_ + "/chunks"));
  RETURN_IF_ERROR(MakeDirsDurably(env_, dir_ + "/pending"));
  for (unsigned shard = 0; shard < 256; ++shard) {
    std::string d = ShardDir(shard);
    if (env_->Exists(d)) continue;
    Status st = env_->MakeDir(d);
    if (!st.ok() && st.code() != proto::ALREADY_EXISTS) return st;
  }
  // Synced at every start, not only when created here: a start-up that failed
  // in these syncs leaves directories that exist but may not be durable.
  RETURN_IF_ERROR(env_->SyncDir(dir_));
  RETURN_IF_ERROR(env_->SyncDir(dir_ + "/chunks"));
  RETURN_IF_ERROR(ProbeDirectIo());
  return RemovePendingVersions();
}

// A target must take O_DIRECT reads and writes of 4 KiB blocks; say so
// plainly at start-up instead of failing every later I/O.
Status ChunkLayout::ProbeDirectIo() const {
  std::string probe = dir_ + "/.direct-io-probe";
  auto f = env_->Open(probe, OpenMode::kCreateTrunc, /*direct=*/true);
  if (!f.ok())
    return Error(f.status().code(),
                 "target " + dir_ + " cannot open files with O_DIRECT (tmpfs or a network fs?): " + f.status().message());
  AlignedBuffer block(kBlockSize);
  std::memset(block.data(), 0x5a, kBlockSize);
  Status st = (*f)->PWrite(block.data(), kBlockSize, 0);
  Result<size_t> got = size_t{0};
  if (st.ok()) got = (*f)->PRead(block.data(), kBlockSize, 0);
  f->reset();
  (void)env_->Unlink(probe);
  if (!st.ok()) return Error(st.code(), "target " + dir_ + " fails O_DIRECT I/O: " + st.message());
  if (!got.ok()) return Error(got.status().code(), "target " + dir_ + " fails O_DIRECT I/O: " + got.status().message());
  if (*got != kBlockSize) return Error(proto::IO_ERROR, "target " + dir_ + " returned a short O_DIRECT read");
  return Status::OK();
}

// A crash between creating a pending version and committing it leaves its
// file behind; it was never acknowledged, so it goes.
Status ChunkLayout::RemovePendingVersions() const {
  std::string pending = dir_ + "/pending";
  ASSIGN_OR_RETURN(auto names, env_->ListDir(pending));
  for (const auto& n : names) RETURN_IF_ERROR(env_->Unlink(pending + "/" + n));
  if (names.empty()) return Status::OK();
  LOG_INFO("{}: removed {} uncommitted chunk versions left by a crash", dir_, names.size());
  return env_->SyncDir(pending);
}

Status ChunkLayout::EnsureInodeDir(uint64_t inode, bool durable) const {
  const std::string idir = InodeDir(inode), shard = ShardDir(inode);
  // One writer of the inode at a time here: one that finds the directory made
  // must also find the mark of its maker's failed sync (check, then act, under
  // one turn), or it would be acknowledged on a directory that is not durable.
  {
    std::unique_lock<std::mutex> l(durability_mu_);
    ensuring_cv_.wait(l, [&] { return !ensuring_.count(inode); });
    ensuring_.insert(inode);
  }
  struct TurnEnds {
    const ChunkLayout* layout;
    uint64_t inode;
    ~TurnEnds() {
      {
        std::lock_guard<std::mutex> l(layout->durability_mu_);
        layout->ensuring_.erase(inode);
      }
      layout->ensuring_cv_.notify_all();
    }
  } turn_ends{this, inode};
  Status st = env_->MakeDir(idir);
  if (st.code() == proto::ALREADY_EXISTS) return durable ? SyncIfNotDurable(shard) : Status::OK();
  RETURN_IF_ERROR(st);
  NotDurable(shard);
  return durable ? SyncDir(shard) : Status::OK();
}

Result<std::vector<uint64_t>> ChunkLayout::ListChunks(uint64_t inode) const {
  auto names = env_->ListDir(InodeDir(inode));
  if (names.status().code() == proto::NOT_FOUND) return std::vector<uint64_t>{};
  if (!names.ok()) return names.status();
  std::vector<uint64_t> out;
  for (const auto& n : *names) {
    char* end = nullptr;
    uint64_t index = strtoull(n.c_str(), &end, 10);
    if (!n.empty() && *end == '\0') out.push_back(index);
  }
  return out;
}

Status ChunkLayout::RemoveInode(uint64_t inode) const {
  RETURN_IF_ERROR(UnlinkInode(inode));
  return SyncIfNotDurable(ShardDir(inode));
}

Status ChunkLayout::UnlinkInode(uint64_t inode) const {
  std::string idir = InodeDir(inode);
  auto names = env_->ListDir(idir);
  // Already gone, maybe by an attempt whose sync failed: the caller's sync of
  // the shard (if still marked) makes that durable.
  if (names.status().code() == proto::NOT_FOUND) return Status::OK();
  if (!names.ok()) return names.status();
  for (const auto& n : *names) {
    Status st = env_->Unlink(idir + "/" + n);
    if (st.ok()) NotDurable(idir);
    if (!st.ok() && st.code() != proto::NOT_FOUND) return st;
  }
  Status st = env_->RemoveDir(idir);
  if (st.ok()) {
    NotDurable(ShardDir(inode));
    std::lock_guard<std::mutex> l(durability_mu_);
    not_durable_.erase(idir);  // its names went with it
  }
  if (!st.ok() && st.code() != proto::NOT_FOUND) return st;
  return Status::OK();
}

void ChunkLayout::NotDurable(const std::string& dir) const {
  std::lock_guard<std::mutex> l(durability_mu_);
  not_durable_[dir] = ++mark_seq_;
}

Status ChunkLayout::SyncDir(const std::string& dir) const {
  uint64_t started;
  {
    std::lock_guard<std::mutex> l(durability_mu_);
    started = mark_seq_;
  }
  RETURN_IF_ERROR(env_->SyncDir(dir));
  // A mark made while the sync ran may be of a change it did not cover: kept.
  std::lock_guard<std::mutex> l(durability_mu_);
  auto it = not_durable_.find(dir);
  if (it != not_durable_.end() && it->second <= started) not_durable_.erase(it);
  return Status::OK();
}

Status ChunkLayout::SyncAll() const {
  uint64_t started;
  {
    std::lock_guard<std::mutex> l(durability_mu_);
    started = mark_seq_;
  }
  RETURN_IF_ERROR(env_->SyncFileSystem(dir_));
  std::lock_guard<std::mutex> l(durability_mu_);
  for (auto it = not_durable_.begin(); it != not_durable_.end();)
    it = it->second <= started ? not_durable_.erase(it) : std::next(it);
  return Status::OK();
}

Status ChunkLayout::SyncIfNotDurable(const std::string& dir) const {
  {
    std::lock_guard<std::mutex> l(durability_mu_);
    if (!not_durable_.count(dir)) return Status::OK();
  }
  Status st = SyncDir(dir);
  if (st.code() != proto::NOT_FOUND) return st;
  // Removed since (durably or not: the removal marked its parent).
  std::lock_guard<std::mutex> l(durability_mu_);
  not_durable_.erase(dir);
  return Status::OK();
}

}  // namespace shoal::storage
