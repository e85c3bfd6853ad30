// In-memory chunk store: the same block CRCs and read widening as the O_DIRECT
// store, kept in maps.
#include <cstring>
#include <map>
#include <mutex>

#include "common/crc32c.h"
#include "storage/chunk_format.h"
#include "storage/chunk_store.h"

namespace shoal::storage {
namespace {

class MemoryChunkStore : public ChunkStore {
 public:
  explicit MemoryChunkStore(uint32_t alignment) : align_(alignment) {}

  void ReadOn(std::vector<ReadOp*> ops, std::function<void()> done, ReadEngine*) override {
    for (ReadOp* op : ops) ReadOne(op);
    done();
  }

  Result<uint64_t> Write(const ChunkWrite& w) override {
    RETURN_IF_ERROR(CheckChunkSize(w.chunk_size));
    if (uint64_t{w.offset} + w.length > w.chunk_size) return Error(proto::INVALID_ARGUMENT, "write leaves the chunk");
    const bool replaces_all = w.offset == 0 && w.length == w.chunk_size;
    std::lock_guard<std::mutex> l(mu_);
    auto it = chunks_.find({w.inode, w.index});
    if (it == chunks_.end() && w.inode < lost_below() && !replaces_all)
      return Error(proto::DATA_LOST, "chunk " + std::to_string(w.index) + " of inode " + std::to_string(w.inode) +
                                         " was lost with its disk");
    Chunk& c = chunks_[{w.inode, w.index}];
    if (c.header.chunk_size && c.header.chunk_size != w.chunk_size)
      return Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
    if (w.version != 0 && w.version != c.header.version + 1)
      return Error(proto::STALE_VERSION, "chunk is at version " + std::to_string(c.header.version) +
                                             ", the write names " + std::to_string(w.version));
    RETURN_IF_ERROR(VerifyKept(c, w.offset == 0 && w.length >= c.header.data_len));
    c.header.chunk_size = w.chunk_size;
    c.header.data_len = std::max(c.header.data_len, w.offset + w.length);
    c.blocks.resize(size_t{c.header.data_blocks()} * kBlockSize, 0);
    if (w.length) std::memcpy(c.blocks.data() + w.offset, w.data, w.length);
    Reseal(c);
    c.header.version++;
    stats_.writes++;
    stats_.write_bytes += w.length;
    return c.header.version;
  }

  Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) override {
    RETURN_IF_ERROR(CheckChunkSize(chunk_size));
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = chunks_.lower_bound({inode, 0}); it != chunks_.end() && it->first.first == inode;) {
      uint64_t start = it->first.second * chunk_size;
      if (start >= length) {
        it = chunks_.erase(it);
        continue;
      }
      Chunk& c = it->second;
      uint64_t keep = length - start;
      if (keep < c.header.data_len) {
        RETURN_IF_ERROR(VerifyKept(c, false));
        c.header.data_len = static_cast<uint32_t>(keep);
        c.blocks.resize(size_t{c.header.data_blocks()} * kBlockSize);
        std::memset(c.blocks.data() + keep, 0, c.blocks.size() - keep);
        Reseal(c);
        c.header.version++;
      }
      ++it;
    }
    return Status::OK();
  }

  Status Remove(uint64_t inode) override {
    std::lock_guard<std::mutex> l(mu_);
    chunks_.erase(chunks_.lower_bound({inode, 0}), chunks_.lower_bound({inode + 1, 0}));
    return Status::OK();
  }

  Status Flip(uint64_t inode, uint64_t index, uint32_t offset) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = chunks_.find({inode, index});
    if (it == chunks_.end() || offset >= it->second.blocks.size()) return Error(proto::NOT_FOUND, "no such byte");
    it->second.blocks[offset] ^= 0x5a;
    return Status::OK();
  }

 private:
  struct Chunk {
    ChunkHeader header;
    std::vector<uint8_t> blocks;  // data_len rounded up to whole blocks, zero padded
  };

  // Old bytes are checked before they are resealed under fresh CRCs.
  Status VerifyKept(const Chunk& c, bool overwritten) {
    if (overwritten || c.blocks.empty()) return Status::OK();
    Status st = VerifyBlocks(c.header, 0, c.blocks.data(), static_cast<uint32_t>(c.blocks.size()));
    if (!st.ok()) stats_.checksum_errors++;
    return st;
  }

  static void Reseal(Chunk& c) {
    c.header.crcs.assign(c.header.chunk_size / kBlockSize, 0);
    for (uint32_t b = 0; b < c.header.data_blocks(); ++b)
      c.header.crcs[b] = Crc32c(c.blocks.data() + size_t{b} * kBlockSize, kBlockSize);
  }

  void ReadOne(ReadOp* op) {
    op->status = CheckChunkSize(op->chunk_size);
    if (op->status.ok() && uint64_t{op->offset} + op->length > op->chunk_size)
      op->status = Error(proto::INVALID_ARGUMENT, "read leaves the chunk");
    if (!op->status.ok()) return;
    uint32_t start = op->offset / align_ * align_;
    uint32_t end = (op->offset + op->length + align_ - 1) / align_ * align_;
    op->buffer = AlignedBuffer(end - start, align_);
    if (end > start) std::memset(op->buffer.data(), 0, end - start);
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = chunks_.find({op->inode, op->index});
      if (it == chunks_.end() && op->inode < lost_below()) {
        op->status = Error(proto::DATA_LOST, "chunk " + std::to_string(op->index) + " of inode " +
                                                 std::to_string(op->inode) + " was lost with its disk");
        return;
      }
      if (it != chunks_.end()) {
        const Chunk& c = it->second;
        if (c.header.chunk_size != op->chunk_size) {
          op->status = Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
          return;
        }
        uint32_t vstart = start / kBlockSize * kBlockSize;
        uint32_t vend = std::min<uint32_t>((end + kBlockSize - 1) / kBlockSize * kBlockSize, c.blocks.size());
        if (vend > vstart) {
          op->status = VerifyBlocks(c.header, vstart / kBlockSize, c.blocks.data() + vstart, vend - vstart);
          if (!op->status.ok()) {
            stats_.checksum_errors++;
            return;
          }
        }
        uint32_t copy_end = std::min<uint32_t>(end, c.blocks.size());
        if (copy_end > start) std::memcpy(op->buffer.data(), c.blocks.data() + start, copy_end - start);
      }
    }
    op->data = op->buffer.data() + (op->offset - start);
    stats_.reads++;
    stats_.read_bytes += op->length;
  }

  uint32_t align_;
  std::mutex mu_;
  std::map<std::pair<uint64_t, uint64_t>, Chunk> chunks_;
};

}  // namespace

std::unique_ptr<ChunkStore> NewMemoryChunkStore(uint32_t alignment) {
  return std::make_unique<MemoryChunkStore>(alignment);
}

Status FlipStoredByte(ChunkStore* memory_store, uint64_t inode, uint64_t index, uint32_t offset) {
  auto* m = dynamic_cast<MemoryChunkStore*>(memory_store);
  if (!m) return Error(proto::INVALID_ARGUMENT, "not an in-memory store");
  return m->Flip(inode, index, offset);
}

}  // namespace shoal::storage
