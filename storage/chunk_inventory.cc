#include "storage/chunk_inventory.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdlib>

#include "common/log.h"
#include "storage/chunk_layout.h"

namespace shoal::storage {
namespace {

// Keys: 'c' + inode (8 bytes, big-endian) + index (8 bytes, big-endian), so
// that an inode's chunks are contiguous and in index order; 'm': the marker
// that the inventory is complete (built from the files of an older target).
constexpr char kChunkTag = 'c';
const std::string kBuiltKey = "m";

void PutBe64(std::string* s, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) s->push_back(static_cast<char>((v >> shift) & 0xff));
}
uint64_t GetBe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}
std::string InodePrefix(uint64_t inode) {
  std::string k(1, kChunkTag);
  PutBe64(&k, inode);
  return k;
}
std::string ChunkKey(uint64_t inode, uint64_t index) {
  std::string k = InodePrefix(inode);
  PutBe64(&k, index);
  return k;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNoSpace()) return Error(proto::NO_SPACE, what + ": " + s.ToString());
  return Error(proto::IO_ERROR, what + ": " + s.ToString());
}

class RocksChunkInventory : public ChunkInventory {
 public:
  RocksChunkInventory(std::unique_ptr<rocksdb::DB> db, std::string where) : db_(std::move(db)), where_(std::move(where)) {}

  Result<bool> Contains(uint64_t inode, uint64_t index) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), ChunkKey(inode, index), &value);
    if (s.IsNotFound()) return false;
    RETURN_IF_ERROR(FromRocks(s, where_ + ": inventory lookup"));
    return true;
  }

  Status Add(uint64_t inode, uint64_t index) override {
    rocksdb::WriteBatch wb;
    wb.Put(ChunkKey(inode, index), rocksdb::Slice());
    return Commit(&wb, "inventory add");
  }

  Status RemoveFrom(uint64_t inode, uint64_t first) override {
    rocksdb::WriteBatch wb;
    RETURN_IF_ERROR(Scan(inode, first, [&](const rocksdb::Slice& key) { wb.Delete(key); }));
    if (wb.Count() == 0) return Status::OK();
    return Commit(&wb, "inventory remove");
  }

  Result<std::vector<uint64_t>> List(uint64_t inode) override {
    std::vector<uint64_t> out;
    RETURN_IF_ERROR(Scan(inode, 0, [&](const rocksdb::Slice& key) { out.push_back(GetBe64(key.data() + 9)); }));
    return out;
  }

  // Lists every chunk file of the target unless that was done before.
  Status BuildOnce(const ChunkLayout& layout) {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), kBuiltKey, &value);
    if (s.ok()) return Status::OK();
    if (!s.IsNotFound()) return FromRocks(s, where_ + ": inventory lookup");
    rocksdb::WriteBatch wb;
    size_t chunks = 0;
    for (uint64_t shard = 0; shard < 256; ++shard) {
      auto inodes = layout.env()->ListDir(layout.ShardDir(shard));
      if (inodes.status().code() == proto::NOT_FOUND) continue;
      RETURN_IF_ERROR(inodes.status());
      for (const std::string& name : *inodes) {
        char* end = nullptr;
        uint64_t inode = strtoull(name.c_str(), &end, 16);
        if (name.empty() || *end != '\0') continue;
        ASSIGN_OR_RETURN(auto indexes, layout.ListChunks(inode));
        for (uint64_t index : indexes) wb.Put(ChunkKey(inode, index), rocksdb::Slice());
        chunks += indexes.size();
      }
    }
    wb.Put(kBuiltKey, rocksdb::Slice());
    RETURN_IF_ERROR(Commit(&wb, "inventory build"));
    if (chunks) LOG_INFO("{}: built the chunk inventory from {} chunk files", where_, chunks);
    return Status::OK();
  }

 private:
  template <typename Fn>
  Status Scan(uint64_t inode, uint64_t first, Fn fn) {
    const std::string prefix = InodePrefix(inode);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(ChunkKey(inode, first)); it->Valid() && it->key().starts_with(prefix); it->Next()) fn(it->key());
    return FromRocks(it->status(), where_ + ": inventory scan");
  }

  Status Commit(rocksdb::WriteBatch* wb, const char* what) {
    rocksdb::WriteOptions wo;
    wo.sync = true;  // concurrent synced writes share one WAL sync (RocksDB's write group)
    return FromRocks(db_->Write(wo, wb), where_ + ": " + what);
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::string where_;
};

}  // namespace

Result<std::unique_ptr<ChunkInventory>> ChunkInventory::Open(const ChunkLayout& layout) {
  rocksdb::Options options;
  options.create_if_missing = true;
  // Small: 16 bytes per chunk. Keep its footprint and its log files small too.
  options.write_buffer_size = 4 << 20;
  options.max_open_files = 64;
  options.keep_log_file_num = 2;
  options.stats_dump_period_sec = 0;
  const std::string path = layout.dir() + "/inventory";
  rocksdb::DB* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, path, &raw), "target " + layout.dir() + ": open " + path));
  auto inv = std::make_unique<RocksChunkInventory>(std::unique_ptr<rocksdb::DB>(raw), "target " + layout.dir());
  RETURN_IF_ERROR(inv->BuildOnce(layout));
  return std::unique_ptr<ChunkInventory>(std::move(inv));
}

}  // namespace shoal::storage
