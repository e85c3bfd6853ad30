#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "meta/kv.h"

namespace shoal::meta {
namespace {

// The smallest key above every key that starts with `prefix` ("" when there
// is none: the prefix is empty or all 0xff).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

const char* kCfNames[kNumCfs] = {"inodes", "dirents", "cluster", "delete_queue", "open_files", "requests", "xattrs"};

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Error(proto::NOT_FOUND, what);
  if (s.IsNoSpace()) return Error(proto::NO_SPACE, what + ": " + s.ToString());
  return Error(proto::IO_ERROR, what + ": " + s.ToString());
}

class RocksKv : public Kv {
 public:
  RocksKv(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> cfs)
      : db_(db), cfs_(std::move(cfs)), commit_([this] { return FromRocks(db_->SyncWAL(), "rocksdb sync wal"); }) {}
  ~RocksKv() override {
    for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }

  Result<std::string> Get(Cf cf, std::string_view key) override {
    std::string value;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[static_cast<int>(cf)], rocksdb::Slice(key.data(), key.size()),
                      &value);
    if (s.IsNotFound()) return Error(proto::NOT_FOUND, "no such key");
    RETURN_IF_ERROR(FromRocks(s, "rocksdb get"));
    return value;
  }

  Result<uint64_t> Apply(const KvBatch& batch) override {
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      auto* h = cfs_[static_cast<int>(op.cf)];
      if (op.value) wb.Put(h, op.key, *op.value);
      else wb.Delete(h, op.key);
    }
    // Un-synced: the batch is in the WAL file (the OS has it: a kill of this
    // process loses nothing) and the memtable; SyncThrough makes it durable,
    // one fsync of the WAL for every batch applied by then.
    rocksdb::WriteOptions wo;
    wo.sync = false;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &wb), "rocksdb write"));
    return commit_.Applied();
  }

  Status SyncThrough(uint64_t seq) override { return commit_.SyncThrough(seq); }
  uint64_t LastApplied() const override { return commit_.applied(); }

  Status Scan(Cf cf, std::string_view prefix, std::string_view after, const ScanFn& fn) override {
    // Bounded to the prefix: without a bound, an iterator that runs out of
    // live keys under the prefix walks on over every deleted key after it
    // (tombstones of released opens, unlinked entries) to find the next live
    // one - a cost that grew with every delete, on every scan.
    rocksdb::ReadOptions ro;
    std::string end = PrefixEnd(prefix);
    rocksdb::Slice upper(end);
    if (!end.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[static_cast<int>(cf)]));
    if (after.empty()) {
      it->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
    } else {
      it->Seek(rocksdb::Slice(after.data(), after.size()));
      if (it->Valid() && it->key() == rocksdb::Slice(after.data(), after.size())) it->Next();
    }
    for (; it->Valid() && it->key().starts_with(rocksdb::Slice(prefix.data(), prefix.size())); it->Next()) {
      if (!fn(std::string_view(it->key().data(), it->key().size()),
              std::string_view(it->value().data(), it->value().size())))
        break;
    }
    return FromRocks(it->status(), "rocksdb scan");
  }

 private:
  rocksdb::DB* db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  GroupCommitter commit_;
};

}  // namespace

Result<std::unique_ptr<Kv>> OpenRocksKv(const std::string& path) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const char* name : kCfNames) descs.emplace_back(name, rocksdb::ColumnFamilyOptions());
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, path, descs, &handles, &db), "open rocksdb at " + path));
  db->DestroyColumnFamilyHandle(handles.back());  // default: unused
  handles.pop_back();
  return std::unique_ptr<Kv>(new RocksKv(db, std::move(handles)));
}

}  // namespace shoal::meta
