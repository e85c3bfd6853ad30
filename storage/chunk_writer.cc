#include "storage/chunk_writer.h"

#include <cstring>

#include "common/crc32c.h"

namespace shoal::storage {
namespace {
uint32_t RoundUp(uint64_t n) { return static_cast<uint32_t>((n + kBlockSize - 1) / kBlockSize * kBlockSize); }
}  // namespace

Result<std::shared_ptr<const ChunkFile>> ChunkWriter::LoadCommitted(uint64_t inode, uint64_t index,
                                                                    uint32_t chunk_size, bool* lost) {
  if (auto f = cache_->Lookup(inode, index)) return f;
  auto file = layout_->env()->Open(layout_->ChunkPath(inode, index), OpenMode::kRead, /*direct=*/true);
  if (file.status().code() == proto::NOT_FOUND) {
    if (lost) {
      ASSIGN_OR_RETURN(*lost, inventory_->IsLost(inode, index));
    }
    return std::shared_ptr<const ChunkFile>();
  }
  if (!file.ok()) return file.status();
  auto cf = std::make_shared<ChunkFile>();
  cf->file = std::move(*file);
  uint32_t hsize = ChunkHeaderSize(chunk_size);
  AlignedBuffer hb(hsize);
  ASSIGN_OR_RETURN(size_t got, cf->file->PRead(hb.data(), hsize, 0));
  RETURN_IF_ERROR(DecodeChunkHeader(hb.data(), got, chunk_size, &cf->header));
  return std::shared_ptr<const ChunkFile>(std::move(cf));
}

Result<uint64_t> ChunkWriter::Apply(const ChunkWrite& w) {
  RETURN_IF_ERROR(CheckChunkSize(w.chunk_size));
  if (uint64_t{w.offset} + w.length > w.chunk_size) return Error(proto::INVALID_ARGUMENT, "write leaves the chunk");
  const bool replaces_all = w.offset == 0 && w.length == w.chunk_size;
  bool lost = false;
  auto cur = LoadCommitted(w.inode, w.index, w.chunk_size, &lost);
  if (!cur.ok()) {
    // A damaged chunk may be replaced whole; anything less would reseal bad bytes.
    if (!(cur.status().code() == proto::CHECKSUM_MISMATCH && replaces_all)) {
      if (cur.status().code() == proto::CHECKSUM_MISMATCH) stats_->checksum_errors++;
      return cur.status();
    }
    cur = std::shared_ptr<const ChunkFile>();
  }
  const ChunkFile* c = cur->get();
  // A present file is a committed version, but not necessarily a durable one
  // (its directory sync may have failed): one that is not listed (a power cut
  // lost its listing, or its first write failed to sync) is listed with the
  // new version, once that is durable.
  bool unlisted = false;
  if (c) {
    ASSIGN_OR_RETURN(bool listed, inventory_->Contains(w.inode, w.index));
    unlisted = !listed;
  }
  if (!c && (lost || w.inode < store_->lost_below()) && !replaces_all)
    return Error(proto::DATA_LOST, "chunk " + std::to_string(w.index) + " of inode " + std::to_string(w.inode) +
                                       " was lost (" + (lost ? "listed, but its file is missing" : "with its disk") +
                                       "); only a whole-chunk write may replace it");
  uint32_t old_len = c ? c->header.data_len : 0;
  return Rewrite(w.inode, w.index, w.chunk_size, c, std::max(old_len, w.offset + w.length), w.offset, w.data,
                 w.length, w.version, /*list=*/c ? unlisted : !lost);
}

Status ChunkWriter::Cut(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t keep) {
  ASSIGN_OR_RETURN(auto cur, LoadCommitted(inode, index, chunk_size));
  if (!cur || cur->header.data_len <= keep) return Status::OK();
  return Rewrite(inode, index, chunk_size, cur.get(), keep, 0, nullptr, 0, 0, /*list=*/false).status();
}

Status ChunkWriter::Delete(uint64_t inode, uint64_t index) {
  Status st = layout_->env()->Unlink(layout_->ChunkPath(inode, index));
  if (st.ok()) layout_->NotDurable(layout_->InodeDir(inode));
  cache_->Erase(inode, index);
  return st.code() == proto::NOT_FOUND ? Status::OK() : st;
}

Result<uint64_t> ChunkWriter::Install(uint64_t inode, uint64_t index, uint32_t chunk_size, const uint8_t* data,
                                      uint32_t length, uint64_t version, bool durable) {
  bool lost = false;
  auto cur = LoadCommitted(inode, index, chunk_size, &lost);
  if (!cur.ok() && cur.status().code() != proto::CHECKSUM_MISMATCH) return cur.status();
  const ChunkFile* c = cur.ok() ? cur->get() : nullptr;  // a damaged one is replaced whole
  if (c && c->header.version >= version) {
    // Already at its name, perhaps from an attempt whose directory sync
    // failed: durable before it is called done.
    if (durable) {
      RETURN_IF_ERROR(layout_->SyncIfNotDurable(layout_->ShardDir(inode)));
      RETURN_IF_ERROR(layout_->SyncIfNotDurable(layout_->InodeDir(inode)));
    }
    return c->header.version;
  }
  bool list = !lost;
  if (c) {
    ASSIGN_OR_RETURN(bool listed, inventory_->Contains(inode, index));
    list = !listed;
  }
  return Rewrite(inode, index, chunk_size, c, length, 0, data, length, version, list && durable, /*any_newer=*/true,
                 durable);
}

Status ChunkWriter::List(uint64_t inode, uint64_t index) { return inventory_->Add(inode, index); }

Result<uint64_t> ChunkWriter::Rewrite(uint64_t inode, uint64_t index, uint32_t chunk_size, const ChunkFile* cur,
                                      uint32_t new_len, uint32_t offset, const uint8_t* data, uint32_t length,
                                      uint64_t version, bool list, bool any_newer, bool durable) {
  uint64_t committed = cur ? cur->header.version : 0;
  if (any_newer && version <= committed)
    return Error(proto::STALE_VERSION, "chunk " + std::to_string(index) + " of inode " + std::to_string(inode) +
                                           " is at version " + std::to_string(committed));
  if (!any_newer && version != 0 && version != committed + 1)
    return Error(proto::STALE_VERSION, "chunk " + std::to_string(index) + " of inode " + std::to_string(inode) +
                                           " is at version " + std::to_string(committed) + ", the write names " +
                                           std::to_string(version));
  const uint32_t hsize = ChunkHeaderSize(chunk_size);
  const uint32_t alen = RoundUp(new_len);
  AlignedBuffer image(hsize + alen);
  uint8_t* body = image.data() + hsize;
  std::memset(body, 0, alen);
  // Keep the old bytes the write does not replace, verified before they are
  // resealed under fresh CRCs.
  uint32_t keep = cur ? std::min(RoundUp(cur->header.data_len), alen) : 0;
  if (offset == 0 && length >= new_len) keep = 0;
  if (keep > 0) {
    ASSIGN_OR_RETURN(size_t got, cur->file->PRead(body, keep, hsize));
    if (got < keep) return Error(proto::IO_ERROR, "chunk " + std::to_string(index) + " of inode " +
                                                      std::to_string(inode) + " is shorter than its header says");
    Status v = VerifyBlocks(cur->header, 0, body, keep);
    if (!v.ok()) {
      stats_->checksum_errors++;
      return v;
    }
  }
  if (new_len < alen) std::memset(body + new_len, 0, alen - new_len);
  if (length) std::memcpy(body + offset, data, length);

  auto next = std::make_shared<ChunkFile>();
  ChunkHeader& h = next->header;
  h.chunk_size = chunk_size;
  h.data_len = new_len;
  h.version = any_newer ? version : committed + 1;
  h.crcs.assign(chunk_size / kBlockSize, 0);
  for (uint32_t b = 0; b < h.data_blocks(); ++b) h.crcs[b] = Crc32c(body + size_t{b} * kBlockSize, kBlockSize);
  EncodeChunkHeader(h, image.data());

  FileEnv* env = layout_->env();
  RETURN_IF_ERROR(layout_->EnsureInodeDir(inode, durable));
  const std::string pending = layout_->PendingPath(inode, index);
  {
    ASSIGN_OR_RETURN(next->file, env->Open(pending, OpenMode::kCreateTrunc, /*direct=*/true));
    Status st = next->file->PWrite(image.data(), hsize + alen, 0);
    if (st.ok() && durable) st = next->file->Sync();
    if (!st.ok()) {
      (void)env->Unlink(pending);  // never acknowledged; start-up removes it if this fails too
      stats_->io_errors++;
      return st;
    }
  }
  if (Status st = env->Rename(pending, layout_->ChunkPath(inode, index)); !st.ok()) {
    (void)env->Unlink(pending);
    stats_->io_errors++;
    return st;
  }
  // From here the name points at the new version: readers must see it even if
  // making the rename durable fails (then the write is not acknowledged, and a
  // retry rewrites the same bytes).
  cache_->Install(inode, index, std::shared_ptr<const ChunkFile>(next));
  layout_->NotDurable(layout_->InodeDir(inode));
  if (!durable) return h.version;
  Status st = layout_->SyncDir(layout_->InodeDir(inode));
  if (st.ok() && list) st = inventory_->Add(inode, index);  // once the file is durable
  if (!st.ok()) {
    stats_->io_errors++;
    return st;
  }
  return h.version;
}

}  // namespace shoal::storage
