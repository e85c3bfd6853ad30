#include "storage/journaled_writes.h"

#include <chrono>
#include <cstring>
#include <set>
#include <shared_mutex>

#include "common/log.h"

namespace shoal::storage {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<JournaledWrites>> JournaledWrites::Open(const ChunkLayout& layout, ChunkWriter* writer,
                                                               ChunkLocks* locks, const ChunkStore* store,
                                                               StoreStats* stats, Options options) {
  std::unique_ptr<JournaledWrites> j(new JournaledWrites(&layout, writer, locks, store, stats, options));
  WriteJournal::Options jo;
  jo.size_bytes = options.journal_bytes;
  jo.commits = &stats->journal_commits;
  ASSIGN_OR_RETURN(j->journal_, WriteJournal::Open(layout.env(), layout.dir() + "/journal", jo));
  // Records are replayed in order, each as the write it was: one whose
  // version the chunk already has was applied before the crash.
  std::set<std::pair<uint64_t, uint64_t>> unreplayable;  // chunks lost or damaged since
  RETURN_IF_ERROR(j->journal_->Replay([&](const JournalRecord& r) -> Status {
    if (unreplayable.count({r.inode, r.index})) return Status::OK();
    auto cur = writer->LoadCommitted(r.inode, r.index, r.chunk_size);
    if (cur.ok() && *cur && (*cur)->header.version >= r.version) return Status::OK();
    ChunkWrite w{r.inode, r.index, r.offset, r.data, r.length, r.chunk_size, r.version};
    auto v = writer->Apply(w);
    // A chunk whose file was lost or damaged since stays so (its reads say
    // which); the rest of the target is still served.
    if (v.status().code() == proto::DATA_LOST || v.status().code() == proto::CHECKSUM_MISMATCH) {
      LOG_ERROR("{}: journaled write to chunk {} of inode {} not replayed: {}", layout.dir(), r.index, r.inode,
                v.status().message());
      unreplayable.insert({r.inode, r.index});
      return Status::OK();
    }
    if (!v.ok())
      return Error(v.status().code(), "replaying the journal of " + layout.dir() + " (chunk " +
                                          std::to_string(r.index) + " of inode " + std::to_string(r.inode) +
                                          ", version " + std::to_string(r.version) + "): " + v.status().message());
    return Status::OK();
  }));
  // A record skipped because its chunk already had its version may have
  // been applied without a sync by the process that crashed: everything is
  // made durable before the checkpoint drops those records.
  RETURN_IF_ERROR(layout.SyncAll());
  RETURN_IF_ERROR(j->journal_->Checkpoint(/*force=*/true));
  if (uint64_t n = j->journal_->stats().replayed) LOG_INFO("{}: replayed {} journaled writes", layout.dir(), n);
  j->applier_ = std::thread([p = j.get()] { p->ApplierLoop(); });
  return j;
}

JournaledWrites::~JournaledWrites() {
  {
    std::lock_guard<std::mutex> l(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  if (applier_.joinable()) applier_.join();
}

bool JournaledWrites::HeldOff(uint64_t inode, uint64_t more_bytes) const {
  std::lock_guard<std::mutex> l(map_mu_);
  return cutting_.count(inode) || bytes_held_ + more_bytes > opts_.journal_bytes;
}

void JournaledWrites::HoldOff(uint64_t inode, bool on) {
  std::lock_guard<std::mutex> l(map_mu_);
  if (on)
    cutting_.insert(inode);
  else
    cutting_.erase(cutting_.find(inode));
}

std::optional<JournaledWrites::Entry> JournaledWrites::Find(const Key& k) const {
  std::lock_guard<std::mutex> l(map_mu_);
  auto it = entries_.find(k);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void JournaledWrites::Erase(const Key& k) {
  auto it = entries_.find(k);
  if (it == entries_.end()) return;
  bytes_held_ -= it->second.bytes->size();
  entries_.erase(it);
  count_.store(entries_.size(), std::memory_order_release);
}

void JournaledWrites::Put(const Key& k, Entry e) {
  {
    std::lock_guard<std::mutex> l(map_mu_);
    Entry& slot = entries_[k];
    if (slot.bytes) bytes_held_ -= slot.bytes->size();
    bytes_held_ += e.bytes->size();
    slot = std::move(e);
    count_.store(entries_.size(), std::memory_order_release);
  }
  {
    std::lock_guard<std::mutex> l(queue_mu_);
    queue_.push_back(Queued{k, NowMs()});
  }
  queue_cv_.notify_one();
}

Result<std::optional<uint64_t>> JournaledWrites::TryWrite(const ChunkWrite& w) {
  RETURN_IF_ERROR(CheckChunkSize(w.chunk_size));
  if (uint64_t{w.offset} + w.length > w.chunk_size) return Error(proto::INVALID_ARGUMENT, "write leaves the chunk");
  const Key k{w.inode, w.index};
  const uint64_t end = uint64_t{w.offset} + w.length;
  if (auto e = Find(k)) {
    if (e->chunk_size != w.chunk_size) return Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
    if (w.version != 0 && w.version != e->version + 1)
      return Error(proto::STALE_VERSION, "chunk " + std::to_string(w.index) + " of inode " + std::to_string(w.inode) +
                                             " is at version " + std::to_string(e->version) + ", the write names " +
                                             std::to_string(w.version));
    const uint64_t new_len = std::max<uint64_t>(e->bytes->size(), end);
    if (new_len <= opts_.max_chunk_bytes && !HeldOff(w.inode, new_len - e->bytes->size())) {
      std::string bytes = *e->bytes;
      if (bytes.size() < end) bytes.resize(end, '\0');
      ASSIGN_OR_RETURN(auto v, Journal(w, std::move(*e), std::move(bytes)));
      if (v) return v;
    }
    RETURN_IF_ERROR(ApplyLocked(k));  // grown past the limit, or no journal room: to its file first
    return std::optional<uint64_t>();
  }
  if (end > opts_.max_chunk_bytes || w.version > 1 || w.inode < store_->lost_below() || HeldOff(w.inode, end))
    return std::optional<uint64_t>();
  bool lost = false;
  auto cur = writer_->LoadCommitted(w.inode, w.index, w.chunk_size, &lost);
  if (!cur.ok() || *cur || lost) return std::optional<uint64_t>();  // the usual path has the answer
  // A removal or cut whose directory sync failed is not durable yet: made
  // so first (as the usual path would), or a power cut could bring the old
  // chunk back over this write.
  RETURN_IF_ERROR(layout_->SyncIfNotDurable(layout_->ShardDir(w.inode)));
  RETURN_IF_ERROR(layout_->SyncIfNotDurable(layout_->InodeDir(w.inode)));
  Entry e;
  e.chunk_size = w.chunk_size;
  return Journal(w, std::move(e), std::string(end, '\0'));
}

Result<std::optional<uint64_t>> JournaledWrites::Journal(const ChunkWrite& w, Entry e, std::string bytes) {
  if (w.length) std::memcpy(bytes.data() + w.offset, w.data, w.length);
  JournalRecord r{0, w.inode, w.index, w.chunk_size, w.offset, w.length, e.version + 1, w.data};
  auto seq = journal_->Append(r);
  if (!seq.ok()) {
    stats_->io_errors++;
    return seq.status();
  }
  if (!*seq) return std::optional<uint64_t>();  // no room, or broken: the chunk file it is
  e.version++;
  e.bytes = std::make_shared<const std::string>(std::move(bytes));
  e.seqs.push_back(**seq);
  const uint64_t version = e.version;
  Put(Key{w.inode, w.index}, std::move(e));
  stats_->journaled_writes++;
  return std::optional<uint64_t>(version);
}

bool JournaledWrites::Read(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t start, uint32_t end,
                           uint8_t* buf, Status* status) {
  if (count_.load(std::memory_order_acquire) == 0) return false;
  std::shared_ptr<const std::string> bytes;
  {
    std::lock_guard<std::mutex> l(map_mu_);
    auto it = entries_.find(Key{inode, index});
    if (it == entries_.end()) return false;
    if (it->second.chunk_size != chunk_size) {
      *status = Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
      return true;
    }
    bytes = it->second.bytes;
  }
  const uint32_t have = start < bytes->size() ? std::min<uint32_t>(end, bytes->size()) - start : 0;
  if (have) std::memcpy(buf, bytes->data() + start, have);
  if (end - start > have) std::memset(buf + have, 0, end - start - have);
  *status = Status::OK();
  return true;
}

Status JournaledWrites::ApplyLocked(const Key& k) {
  auto e = Find(k);
  if (!e) return Status::OK();
  auto v = writer_->Install(k.inode, k.index, e->chunk_size, reinterpret_cast<const uint8_t*>(e->bytes->data()),
                            static_cast<uint32_t>(e->bytes->size()), e->version);
  if (!v.ok()) return v.status();
  {
    std::lock_guard<std::mutex> l(map_mu_);
    Erase(k);
  }
  // Checkpointed here and now: rare (a full journal, a chunk grown past the
  // limit), and it keeps the applier's timed checkpoint from doing I/O at a
  // moment no operation chose.
  std::lock_guard<std::mutex> rl(retire_mu_);
  for (uint64_t seq : e->seqs) journal_->Retire(seq);
  return journal_->Checkpoint();
}

Status JournaledWrites::ApplyOne(const Key& k) {
  std::shared_lock<std::shared_mutex> il(locks_->Inode(k.inode));
  std::lock_guard<std::mutex> cl(locks_->Chunk(k.inode, k.index));
  return ApplyLocked(k);
}

Status JournaledWrites::ApplyWithoutSync(const Key& k, std::vector<uint64_t>* seqs) {
  std::shared_lock<std::shared_mutex> il(locks_->Inode(k.inode));
  std::lock_guard<std::mutex> cl(locks_->Chunk(k.inode, k.index));
  auto e = Find(k);
  if (!e) return Status::OK();
  auto v = writer_->Install(k.inode, k.index, e->chunk_size, reinterpret_cast<const uint8_t*>(e->bytes->data()),
                            static_cast<uint32_t>(e->bytes->size()), e->version, /*durable=*/false);
  if (!v.ok()) return v.status();
  // Readers go to the file from here: it is at its name (and in the cache).
  {
    std::lock_guard<std::mutex> l(map_mu_);
    Erase(k);
  }
  *seqs = std::move(e->seqs);
  return Status::OK();
}

Status JournaledWrites::CheckpointNow() {
  std::lock_guard<std::mutex> l(retire_mu_);
  return journal_->Checkpoint();
}

Status JournaledWrites::ApplyAll() {
  std::vector<Key> keys;
  {
    std::lock_guard<std::mutex> l(map_mu_);
    for (const auto& [k, e] : entries_) keys.push_back(k);
  }
  for (const Key& k : keys) RETURN_IF_ERROR(ApplyOne(k));
  return CheckpointNow();
}

Status JournaledWrites::Settle(uint64_t inode) {
  // Records that failed count as retired at once: a checkpoint may be all
  // that is missing. Otherwise the applier gets there, hurried meanwhile.
  RETURN_IF_ERROR(CheckpointNow());
  if (Settled(inode)) return Status::OK();
  const int64_t deadline = NowMs() + opts_.settle_timeout_ms;
  settling_++;
  uint64_t failures;
  {
    std::lock_guard<std::mutex> l(queue_mu_);  // the applier is waiting, or sees settling_ before it waits
    failures = apply_failures_;
  }
  queue_cv_.notify_all();
  Status st;
  while (!Settled(inode)) {
    {
      // A disk that fails the applier fails the cut too, at once.
      std::lock_guard<std::mutex> l(queue_mu_);
      if (apply_failures_ != failures) {
        st = last_apply_error_;
        break;
      }
    }
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      st = Error(proto::UNAVAILABLE,
                 "inode " + std::to_string(inode) + " still has journaled writes not applied to its chunk files");
      break;
    }
    // The applier checkpoints (and reports a failure to) while this waits.
    journal_->WaitNoLiveRecords(inode, std::min<int64_t>(left, 100));
  }
  settling_--;
  return st;
}

void JournaledWrites::ApplierLoop() {
  std::unique_lock<std::mutex> l(queue_mu_);
  std::vector<Key> failed;
  // Applied, not yet durable: their records are retired after a SyncAll.
  std::vector<std::pair<Key, std::vector<uint64_t>>> unsynced;
  int64_t last_checkpoint_ms = NowMs();
  for (;;) {
    queue_cv_.wait_for(l, std::chrono::milliseconds(failed.empty() && unsynced.empty() ? 1000 : 100),
                       [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;  // what is left is replayed at the next start
    // A young chunk waits a little for its file's next writes, unless a cut
    // is waiting for it or the backlog is large.
    const bool hurry = settling_.load() > 0 || queue_.size() >= 256;
    if (!queue_.empty() && !hurry) {
      const int64_t wait = std::min(queue_.front().at_ms + opts_.apply_delay_ms - NowMs(), int64_t{1000});
      if (wait > 0) {
        queue_cv_.wait_for(l, std::chrono::milliseconds(wait), [&] { return stop_ || settling_.load() > 0; });
        continue;
      }
    }
    std::vector<Key> batch(failed);
    failed.clear();
    const int64_t ripe = hurry ? INT64_MAX : NowMs() - opts_.apply_delay_ms;
    while (!queue_.empty() && queue_.front().at_ms <= ripe) {
      batch.push_back(queue_.front().key);
      queue_.pop_front();
    }
    l.unlock();
    Status first_error;
    for (const Key& k : batch) {
      if (stop_) break;  // the rest stays in the journal, replayed at the next start
      std::vector<uint64_t> seqs;
      if (Status st = ApplyWithoutSync(k, &seqs); !st.ok()) {
        LOG_ERROR("applying a journaled write (chunk {} of inode {}): {}", k.index, k.inode, st.message());
        if (first_error.ok()) first_error = st;
        failed.push_back(k);
      } else if (!seqs.empty()) {
        unsynced.emplace_back(k, std::move(seqs));
      }
    }
    // One sync of the whole target for every chunk of the pass: the
    // per-chunk syncs are what the journal is there to save.
    if (!unsynced.empty()) {
      if (Status st = layout_->SyncAll(); !st.ok()) {
        LOG_ERROR("making applied journaled writes durable: {}", st.message());
        if (first_error.ok()) first_error = st;
      } else {
        for (auto& [k, seqs] : unsynced) {
          std::shared_lock<std::shared_mutex> il(locks_->Inode(k.inode));
          std::lock_guard<std::mutex> cl(locks_->Chunk(k.inode, k.index));
          if (Status st = writer_->List(k.inode, k.index); !st.ok())
            LOG_ERROR("listing chunk {} of inode {}: {}", k.index, k.inode, st.message());
        }
        // A pass's records are retired, and checkpointed, together (no chunk
        // lock is taken under retire_mu_: writers take it under theirs).
        std::lock_guard<std::mutex> rl(retire_mu_);
        for (auto& [k, seqs] : unsynced)
          for (uint64_t seq : seqs) journal_->Retire(seq);
        unsynced.clear();
        if (settling_.load() > 0) {
          if (Status st = journal_->Checkpoint(); !st.ok()) {
            LOG_ERROR("journal checkpoint: {}", st.message());
            if (first_error.ok()) first_error = st;  // fails the waiting cut
          }
          last_checkpoint_ms = NowMs();
        }
      }
    }
    // A checkpoint costs a sync: made when the ring fills up, or once a
    // second (a replay after a crash re-applies what lies before it, which
    // versions make harmless), or at once for a waiting cut.
    const int64_t now = NowMs();
    if (first_error.ok() &&
        (settling_.load() > 0 || journal_->used_fraction() > 0.5 || now - last_checkpoint_ms >= 1000)) {
      if (Status st = CheckpointNow(); !st.ok()) LOG_ERROR("journal checkpoint: {}", st.message());
      last_checkpoint_ms = now;
    }
    l.lock();
    if (!first_error.ok()) {
      apply_failures_++;
      last_apply_error_ = first_error;
    }
  }
}

}  // namespace shoal::storage
