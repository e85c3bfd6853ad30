// Open-file records, orphans and client sessions (see meta_store.h).
#include <algorithm>

#include "common/log.h"
#include "meta/meta_store.h"

namespace shoal::meta {

namespace {
constexpr uint32_t kMinLeaseMs = 100;

std::string RecordKey(uint64_t ino, uint64_t client_id, uint64_t handle) {
  return "i" + MetaStore::InodeKey(ino) + MetaStore::InodeKey(client_id) + MetaStore::InodeKey(handle);
}
std::string ClientKey(uint64_t client_id, uint64_t ino, uint64_t handle) {
  return "c" + MetaStore::InodeKey(client_id) + MetaStore::InodeKey(ino) + MetaStore::InodeKey(handle);
}
std::string OrphanKey(uint64_t ino) { return "z" + MetaStore::InodeKey(ino); }
std::string SessionKey(uint64_t client_id) { return "s" + MetaStore::InodeKey(client_id); }
const char kBootKey[] = "b";  // the host boot id meta last started under
}  // namespace

bool MetaStore::HasOpenRecord(uint64_t ino, const std::set<std::string>& ignore) {
  bool found = false;
  Status st = kv_->Scan(Cf::kOpenFiles, "i" + InodeKey(ino), "", [&](std::string_view k, std::string_view) {
    if (ignore.count(std::string(k))) return true;
    found = true;
    return false;
  });
  if (!st.ok()) {
    LOG_WARN("open records of inode {} unreadable ({}): keeping it", ino, st.ToString());
    return true;
  }
  return found;
}

void MetaStore::PutOpenRecord(KvBatch& b, uint64_t client_id, uint64_t ino, uint64_t handle) {
  b.Put(Cf::kOpenFiles, RecordKey(ino, client_id, handle), "");
  b.Put(Cf::kOpenFiles, ClientKey(client_id, ino, handle), "");
  EnsureSession(b, client_id);
}

void MetaStore::EnsureSession(KvBatch& b, uint64_t client_id) {
  std::lock_guard<std::mutex> l(session_mu_);
  auto it = sessions_.find(client_id);
  if (it != sessions_.end()) return;
  // A record without a session would never expire: open one with the longest lease.
  sessions_[client_id] = Session{clock_->NowMs() + max_lease_ms_, max_lease_ms_};
  b.Put(Cf::kOpenFiles, SessionKey(client_id), InodeKey(max_lease_ms_));
}

Status MetaStore::RecordOpen(uint64_t client_id, uint64_t ino, uint64_t handle) {
  if (client_id == 0 || handle == 0) return Error(proto::INVALID_ARGUMENT, "an open record needs a client and a handle");
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadInode(ino));
  auto existing = kv_->Get(Cf::kOpenFiles, RecordKey(ino, client_id, handle));
  if (existing.ok()) return Status::OK();
  if (existing.status().code() != proto::NOT_FOUND) return existing.status();
  KvBatch b;
  PutOpenRecord(b, client_id, ino, handle);
  RETURN_IF_ERROR(kv_->Apply(b).status());  // no sync: see meta_store.h
  ++open_records_;
  return Status::OK();
}

Status MetaStore::Release(uint64_t client_id, uint64_t ino, uint64_t handle) {
  std::lock_guard<std::mutex> l(write_mu_);
  std::string rec = RecordKey(ino, client_id, handle);
  auto existing = kv_->Get(Cf::kOpenFiles, rec);
  if (!existing.ok()) return existing.status().code() == proto::NOT_FOUND ? Status::OK() : existing.status();
  KvBatch b;
  b.Delete(Cf::kOpenFiles, rec);
  b.Delete(Cf::kOpenFiles, ClientKey(client_id, ino, handle));
  bool freed = false;
  auto orphan = kv_->Get(Cf::kOpenFiles, OrphanKey(ino));
  if (orphan.ok() && !HasOpenRecord(ino, {rec})) {
    auto a = LoadInode(ino);
    if (a.ok()) FreeInode(b, *a);
    b.Delete(Cf::kOpenFiles, OrphanKey(ino));
    freed = true;
  } else if (!orphan.ok() && orphan.status().code() != proto::NOT_FOUND) {
    return orphan.status();
  }
  // A freed orphan's chunks are reclaimed from here on: that waits for the sync.
  if (freed) RETURN_IF_ERROR(kv_->Write(b));
  else RETURN_IF_ERROR(kv_->Apply(b).status());
  --open_records_;
  if (freed) --orphans_;
  return Status::OK();
}

Result<uint32_t> MetaStore::RenewSession(uint64_t client_id, uint32_t lease_ms, bool* known) {
  if (client_id == 0) return Error(proto::INVALID_ARGUMENT, "client id 0");
  lease_ms = std::clamp(lease_ms, kMinLeaseMs, std::max(kMinLeaseMs, max_lease_ms_));
  {
    std::lock_guard<std::mutex> l(session_mu_);
    auto it = sessions_.find(client_id);
    *known = it != sessions_.end();
    if (*known && it->second.lease_ms == lease_ms) {
      it->second.expires_ms = clock_->NowMs() + lease_ms;
      return lease_ms;
    }
  }
  // New, or a new lease: persisted, so that a restarted meta expires the
  // session's records after the lease the client asked for.
  std::lock_guard<std::mutex> w(write_mu_);
  KvBatch b;
  b.Put(Cf::kOpenFiles, SessionKey(client_id), InodeKey(lease_ms));
  RETURN_IF_ERROR(kv_->Write(b));
  std::lock_guard<std::mutex> l(session_mu_);
  sessions_[client_id] = Session{clock_->NowMs() + lease_ms, lease_ms};
  return lease_ms;
}

Status MetaStore::CloseSession(uint64_t client_id) { return EndSession(client_id, false, nullptr); }

Result<int> MetaStore::ExpireSessions() {
  if (!grace_swept_.load() && !InGrace()) {
    std::lock_guard<std::mutex> w(write_mu_);
    if (!grace_swept_.load()) {
      RETURN_IF_ERROR(FreeUnheldOrphans());
      grace_swept_ = true;
      LOG_INFO("grace period over: open records re-recorded by clients kept their orphans");
    }
  }
  std::vector<uint64_t> expired;
  {
    std::lock_guard<std::mutex> l(session_mu_);
    int64_t now = clock_->NowMs();
    for (const auto& [id, s] : sessions_)
      if (s.expires_ms <= now) expired.push_back(id);
  }
  int n = 0;
  for (uint64_t id : expired) {
    bool ended = false;
    RETURN_IF_ERROR(EndSession(id, true, &ended));
    if (ended) {
      LOG_INFO("session {:016x} expired: released its open files", id);
      ++n;
    }
  }
  return n;
}

Status MetaStore::EndSession(uint64_t client_id, bool only_if_expired, bool* ended) {
  std::lock_guard<std::mutex> w(write_mu_);
  Session was{0, 0};
  {
    // Checked and erased at once: a renewal from now on finds no session and
    // opens a new one (known = false) once this is done (it needs write_mu_).
    std::lock_guard<std::mutex> l(session_mu_);
    auto it = sessions_.find(client_id);
    if (only_if_expired && (it == sessions_.end() || it->second.expires_ms > clock_->NowMs())) return Status::OK();
    if (it != sessions_.end()) {
      was = it->second;
      sessions_.erase(it);
    }
  }
  Status st = DropSessionState(client_id);
  if (!st.ok()) {
    // Try again on the next pass.
    std::lock_guard<std::mutex> l(session_mu_);
    if (was.lease_ms && !sessions_.count(client_id)) sessions_[client_id] = Session{clock_->NowMs(), was.lease_ms};
    return st;
  }
  if (ended) *ended = true;
  return Status::OK();
}

Status MetaStore::DropSessionState(uint64_t client_id) {
  KvBatch b;
  std::set<std::string> dropped;
  std::set<uint64_t> inos;
  Status bad;
  RETURN_IF_ERROR(kv_->Scan(Cf::kOpenFiles, "c" + InodeKey(client_id), "", [&](std::string_view k, std::string_view) {
    if (k.size() != 25) {
      bad = Error(proto::INTERNAL, "corrupt open-file index key");
      return false;
    }
    uint64_t ino = ReadBe64(k.substr(9)), handle = ReadBe64(k.substr(17));
    b.Delete(Cf::kOpenFiles, std::string(k));
    std::string rec = RecordKey(ino, client_id, handle);
    b.Delete(Cf::kOpenFiles, rec);
    dropped.insert(rec);
    inos.insert(ino);
    return true;
  }));
  RETURN_IF_ERROR(bad);
  int freed = 0;
  for (uint64_t ino : inos) {
    auto orphan = kv_->Get(Cf::kOpenFiles, OrphanKey(ino));
    if (!orphan.ok()) {
      if (orphan.status().code() != proto::NOT_FOUND) return orphan.status();
      continue;
    }
    if (HasOpenRecord(ino, dropped)) continue;
    auto a = LoadInode(ino);
    if (a.ok()) FreeInode(b, *a);
    b.Delete(Cf::kOpenFiles, OrphanKey(ino));
    ++freed;
  }
  ApplyIntents(b, client_id);
  // The results remembered for the client's retries go with it.
  RETURN_IF_ERROR(kv_->Scan(Cf::kRequests, InodeKey(client_id), "", [&](std::string_view k, std::string_view) {
    b.Delete(Cf::kRequests, std::string(k));
    return true;
  }));
  b.Delete(Cf::kOpenFiles, SessionKey(client_id));
  RETURN_IF_ERROR(kv_->Write(b));
  open_records_ -= dropped.size();
  orphans_ -= freed;
  {
    std::lock_guard<std::mutex> l(call_mu_);
    forgotten_below_.erase(client_id);
  }
  return Status::OK();
}

Status MetaStore::RestoreOpenFiles() {
  std::lock_guard<std::mutex> w(write_mu_);
  int64_t now = clock_->NowMs();
  uint64_t records = 0;
  std::set<uint64_t> clients_with_records;
  std::vector<uint64_t> orphans;
  Status bad;
  RETURN_IF_ERROR(kv_->Scan(Cf::kOpenFiles, "", "", [&](std::string_view k, std::string_view v) {
    if (k.empty()) return true;
    switch (k[0]) {
      case 'i':
        ++records;
        if (k.size() == 25) clients_with_records.insert(ReadBe64(k.substr(9)));
        break;
      case 'z':
        if (k.size() == 9) orphans.push_back(ReadBe64(k.substr(1)));
        break;
      case 's':
        if (k.size() == 9 && v.size() == 8) {
          // Every session gets its whole lease again from now: a client that
          // kept renewing while meta was down must not lose its files.
          uint32_t lease = static_cast<uint32_t>(ReadBe64(v));
          std::lock_guard<std::mutex> l(session_mu_);
          sessions_[ReadBe64(k.substr(1))] = Session{now + lease, lease};
        }
        break;
    }
    return true;
  }));
  RETURN_IF_ERROR(bad);
  {
    // Records whose session key is missing (cannot be written so, but never
    // keep a record that nothing expires).
    std::lock_guard<std::mutex> l(session_mu_);
    for (uint64_t c : clients_with_records)
      if (!sessions_.count(c)) sessions_[c] = Session{now + max_lease_ms_, max_lease_ms_};
  }
  open_records_ = records;
  orphans_ = orphans.size();
  // A new host boot: the last open records may have gone with the host (they
  // are written without a sync). Clients re-record theirs within a lease.
  auto boot = kv_->Get(Cf::kOpenFiles, kBootKey);
  if (!boot.ok() && boot.status().code() != proto::NOT_FOUND) return boot.status();
  if (!boot.ok() || *boot != host_boot_id_) {
    KvBatch b;
    b.Put(Cf::kOpenFiles, kBootKey, host_boot_id_);
    RETURN_IF_ERROR(kv_->Write(b));
    if (boot.ok()) {
      grace_until_ms_ = now + max_lease_ms_;
      grace_swept_ = false;
      LOG_INFO("started on a new host boot: grace period of {} ms for clients to re-record their open files",
               max_lease_ms_);
      return Status::OK();
    }
  }
  // An orphan that nobody holds open (its records went while a write was
  // lost, or HasOpenRecord erred on the side of keeping it) is freed now.
  return FreeUnheldOrphans();
}

Status MetaStore::FreeUnheldOrphans() {
  std::vector<uint64_t> orphans;
  RETURN_IF_ERROR(kv_->Scan(Cf::kOpenFiles, "z", "", [&](std::string_view k, std::string_view) {
    if (k.size() == 9) orphans.push_back(ReadBe64(k.substr(1)));
    return true;
  }));
  KvBatch b;
  uint64_t freed = 0;
  for (uint64_t ino : orphans) {
    if (HasOpenRecord(ino)) continue;
    auto a = LoadInode(ino);
    if (a.ok()) FreeInode(b, *a);
    b.Delete(Cf::kOpenFiles, OrphanKey(ino));
    ++freed;
  }
  if (b.empty()) return Status::OK();
  RETURN_IF_ERROR(kv_->Write(b));
  orphans_ -= freed;
  return Status::OK();
}

size_t MetaStore::CountSessions() const {
  std::lock_guard<std::mutex> l(session_mu_);
  return sessions_.size();
}

}  // namespace shoal::meta
