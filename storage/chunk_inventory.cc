#include "storage/chunk_inventory.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "common/log.h"
#include "storage/chunk_layout.h"

namespace shoal::storage {
namespace {

// Keys: 'c' + inode (8 bytes, big-endian) + index (8 bytes, big-endian), so
// that an inode's chunks are contiguous and in index order; 'x' + inode: a cut
// in progress, valued with its first index; 'm': the marker that the
// inventory is complete (built from the files of an older target).
constexpr char kChunkTag = 'c';
constexpr char kCutTag = 'x';
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
std::string CutKey(uint64_t inode) {
  std::string k(1, kCutTag);
  PutBe64(&k, inode);
  return k;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNoSpace()) return Error(proto::NO_SPACE, what + ": " + s.ToString());
  return Error(proto::IO_ERROR, what + ": " + s.ToString());
}

class RocksChunkInventory : public ChunkInventory {
 public:
  RocksChunkInventory(std::unique_ptr<rocksdb::DB> db, std::string where, Options options)
      : db_(std::move(db)), where_(std::move(where)), options_(options) {}

  ~RocksChunkInventory() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
    if (Status st = Sync(); !st.ok()) LOG_WARN("{}", st.ToString());
  }

  void StartSyncer() {
    syncer_ = std::thread([this] {
      std::unique_lock<std::mutex> l(mu_);
      while (!stop_) {
        options_.clock->WaitUntil(cv_, l, options_.clock->NowMs() + options_.sync_interval_ms, [this] { return stop_; });
        if (stop_) break;
        l.unlock();
        if (Status st = Sync(); !st.ok()) LOG_WARN("{}", st.ToString());
        l.lock();
      }
    });
  }

  Result<bool> Contains(uint64_t inode, uint64_t index) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), ChunkKey(inode, index), &value);
    if (s.IsNotFound()) return false;
    RETURN_IF_ERROR(FromRocks(s, where_ + ": inventory lookup"));
    return true;
  }

  Result<bool> IsLost(uint64_t inode, uint64_t index) override {
    ASSIGN_OR_RETURN(bool listed, Contains(inode, index));
    if (!listed) return false;
    ASSIGN_OR_RETURN(auto cut, CutFrom(inode));
    return !(cut && index >= *cut);
  }

  Status Add(uint64_t inode, uint64_t index) override {
    rocksdb::WriteBatch wb;
    wb.Put(ChunkKey(inode, index), rocksdb::Slice());
    return Apply(&wb, /*sync=*/false, "inventory add");
  }

  Status BeginCut(uint64_t inode, uint64_t first) override {
    ASSIGN_OR_RETURN(auto cut, CutFrom(inode));
    if (cut && *cut <= first) return Status::OK();  // a wider mark is already durable
    std::string value;
    PutBe64(&value, first);
    rocksdb::WriteBatch wb;
    wb.Put(CutKey(inode), value);
    return Apply(&wb, /*sync=*/true, "inventory cut mark");
  }

  Status BeginRemoval(const std::vector<uint64_t>& inodes) override {
    rocksdb::WriteBatch wb;
    std::string zero;
    PutBe64(&zero, 0);
    for (uint64_t inode : inodes) {
      ASSIGN_OR_RETURN(auto cut, CutFrom(inode));
      if (!cut || *cut != 0) wb.Put(CutKey(inode), zero);
    }
    if (wb.Count() == 0) return Status::OK();
    return Apply(&wb, /*sync=*/true, "inventory cut marks");
  }

  Status EndCut(uint64_t inode, uint64_t first) override {
    rocksdb::WriteBatch wb;
    RETURN_IF_ERROR(Scan(inode, first, [&](const rocksdb::Slice& key) { wb.Delete(key); }));
    ASSIGN_OR_RETURN(auto cut, CutFrom(inode));
    if (cut && *cut >= first) wb.Delete(CutKey(inode));
    if (wb.Count() == 0) return Status::OK();
    return Apply(&wb, /*sync=*/false, "inventory cut");
  }

  Status RemoveInode(uint64_t inode) override {
    rocksdb::WriteBatch wb;
    RETURN_IF_ERROR(Scan(inode, 0, [&](const rocksdb::Slice& key) { wb.Delete(key); }));
    wb.Delete(CutKey(inode));
    return Apply(&wb, /*sync=*/false, "inventory remove");
  }

  Result<std::vector<uint64_t>> List(uint64_t inode) override {
    std::vector<uint64_t> out;
    RETURN_IF_ERROR(Scan(inode, 0, [&](const rocksdb::Slice& key) { out.push_back(GetBe64(key.data() + 9)); }));
    return out;
  }

  Status Sync() override {
    const uint64_t applied = applied_.load();
    if (synced_.load() >= applied) return Status::OK();
    RETURN_IF_ERROR(FromRocks(db_->SyncWAL(), where_ + ": inventory sync"));
    RaiseTo(synced_, applied);
    return Status::OK();
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
    RETURN_IF_ERROR(Apply(&wb, /*sync=*/true, "inventory build"));
    if (chunks) LOG_INFO("{}: built the chunk inventory from {} chunk files", where_, chunks);
    return Status::OK();
  }

 private:
  // The first index of the inode's cut mark, if it has one.
  Result<std::optional<uint64_t>> CutFrom(uint64_t inode) {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), CutKey(inode), &value);
    if (s.IsNotFound()) return std::optional<uint64_t>();
    RETURN_IF_ERROR(FromRocks(s, where_ + ": inventory lookup"));
    if (value.size() != 8) return Error(proto::IO_ERROR, where_ + ": inventory cut mark of inode " +
                                                             std::to_string(inode) + " is damaged");
    return std::optional<uint64_t>(GetBe64(value.data()));
  }

  template <typename Fn>
  Status Scan(uint64_t inode, uint64_t first, Fn fn) {
    const std::string prefix = InodePrefix(inode);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(ChunkKey(inode, first)); it->Valid() && it->key().starts_with(prefix); it->Next()) fn(it->key());
    return FromRocks(it->status(), where_ + ": inventory scan");
  }

  // A synced write also makes every lazy one applied before it durable (one WAL).
  Status Apply(rocksdb::WriteBatch* wb, bool sync, const char* what) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;  // concurrent synced writes share one WAL sync (RocksDB's write group)
    const uint64_t before = applied_.load();
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, wb), where_ + ": " + what));
    applied_.fetch_add(1);
    if (sync) RaiseTo(synced_, before);
    return Status::OK();
  }
  static void RaiseTo(std::atomic<uint64_t>& v, uint64_t to) {
    uint64_t cur = v.load();
    while (cur < to && !v.compare_exchange_weak(cur, to)) {
    }
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::string where_;
  Options options_;
  std::atomic<uint64_t> applied_{0};  // writes applied
  std::atomic<uint64_t> synced_{0};   // of those, the first this many are known durable
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread syncer_;
};

}  // namespace

Result<std::unique_ptr<ChunkInventory>> ChunkInventory::Open(const ChunkLayout& layout, Options opts) {
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
  auto inv = std::make_unique<RocksChunkInventory>(std::unique_ptr<rocksdb::DB>(raw), "target " + layout.dir(), opts);
  RETURN_IF_ERROR(inv->BuildOnce(layout));
  inv->StartSyncer();
  return std::unique_ptr<ChunkInventory>(std::move(inv));
}

}  // namespace shoal::storage
