#include "meta/cluster_identity.h"

#include <filesystem>

#include "common/log.h"
#include "common/random_id.h"

namespace shoal::meta {
namespace {

const char kClusterUuidKey[] = "cluster_uuid";

// True when `kv` holds no key in any column family.
Result<bool> KvIsEmpty(Kv* kv) {
  bool empty = true;
  for (int cf = 0; cf < kNumCfs; ++cf) {
    RETURN_IF_ERROR(kv->Scan(static_cast<Cf>(cf), "", "", [&](std::string_view, std::string_view) {
      empty = false;
      return false;
    }));
    if (!empty) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Kv>> OpenMetaDatabase(const std::string& dir, bool init) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // RocksDB keeps the name of its live manifest in CURRENT: no CURRENT, no database.
  bool has_db = fs::exists(fs::path(dir) / "CURRENT", ec);
  if (!init && !has_db) {
    return Error(proto::INVALID_ARGUMENT,
                 "no Shoal database in " + dir +
                     " (data_dir): start shoal-meta once with --init to create a new cluster, or point data_dir "
                     "at the existing database");
  }
  if (init && !has_db && fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return Error(proto::INVALID_ARGUMENT,
                 "--init: " + dir + " (data_dir) is not empty and holds no Shoal database; refusing to create one "
                                    "among other files");
  }
  if (init) {
    fs::create_directories(dir, ec);
    if (ec) return Error(proto::IO_ERROR, "create " + dir + ": " + ec.message());
  }
  return OpenRocksKv(dir);
}

Result<std::string> LoadClusterUuid(Kv* kv, const std::string& where) {
  auto uuid = kv->Get(Cf::kCluster, kClusterUuidKey);
  if (uuid.status().code() == proto::NOT_FOUND) {
    ASSIGN_OR_RETURN(bool empty, KvIsEmpty(kv));
    return Error(proto::INVALID_ARGUMENT,
                 empty ? "the database in " + where +
                             " is empty (an initialisation that did not finish?): start with --init to create a new "
                             "cluster"
                       : "the database in " + where +
                             " has no cluster identity (made by an older shoal-meta); it cannot be served safely");
  }
  if (!uuid.ok()) return uuid.status();
  if (!IsUuid(*uuid)) return Error(proto::INVALID_ARGUMENT, "the database in " + where + " has a corrupt cluster UUID");
  return uuid;
}

Result<std::string> InitClusterUuid(Kv* kv, const std::string& where) {
  ASSIGN_OR_RETURN(bool empty, KvIsEmpty(kv));
  if (!empty) {
    auto existing = kv->Get(Cf::kCluster, kClusterUuidKey);
    return Error(proto::INVALID_ARGUMENT,
                 "--init: the database in " + where + " already holds " +
                     (existing.ok() ? "cluster " + *existing : std::string("data")) +
                     "; --init only creates a new cluster (start without it to serve this one)");
  }
  std::string uuid = NewUuid();
  KvBatch b;
  b.Put(Cf::kCluster, kClusterUuidKey, uuid);
  RETURN_IF_ERROR(kv->Write(b));
  LOG_INFO("initialised a new cluster {} in {}", uuid, where);
  return uuid;
}

}  // namespace shoal::meta
