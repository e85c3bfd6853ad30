// New small chunks through the write journal (write_journal.h), for the
// O_DIRECT store: the write of a chunk that has no file yet (and the writes
// that follow it while it stays small and unapplied) is acknowledged once its
// record is durable in the journal — one shared sync — and kept in memory,
// where reads find it. A background thread (the applier) later writes each
// such chunk to its file the usual way (chunk_writer.h), retires its records
// and checkpoints the journal. At start-up, the records a crash left are
// replayed through the chunk writer before the target is served.
//
// Why the cut and removal paths wait (Settle): a record replayed after a
// truncate or remove of its inode would bring cut bytes back. So before a cut
// takes its inode, every record of that inode must be behind the journal's
// durable checkpoint; Settled() checks it again under the inode lock.
//
// Versions make replay idempotent: a record whose version the chunk already
// has (its file was written before the crash) is skipped.
//
// Thread-safety: TryWrite under the chunk's locks (ChunkLocks: inode shared,
// chunk); Read from any thread, no lock needed; Settle with no chunk lock
// held; Settled under the inode lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "storage/chunk_layout.h"
#include "storage/chunk_locks.h"
#include "storage/chunk_store.h"
#include "storage/chunk_writer.h"
#include "storage/write_journal.h"

namespace shoal::storage {

class JournaledWrites {
 public:
  struct Options {
    uint64_t journal_bytes = 64ull << 20;
    uint32_t max_chunk_bytes = 256u << 10;  // a chunk larger than this is written to its file at once
    int64_t apply_delay_ms = 20;            // lets a small file's next writes join its chunk first
    int64_t settle_timeout_ms = 30000;
  };

  // Opens the target's journal and replays what it holds through `writer`.
  static Result<std::unique_ptr<JournaledWrites>> Open(const ChunkLayout& layout, ChunkWriter* writer,
                                                       ChunkLocks* locks, const ChunkStore* store,
                                                       StoreStats* stats, Options options);
  // Stops the applier (after the chunk it is writing, if any). What was not
  // applied stays in the journal and is replayed at the next Open.
  ~JournaledWrites();

  // A write (ChunkStore::Write's contract). The committed version when the
  // write went to the journal; nullopt when the caller must write the chunk
  // file itself (any journaled bytes of that chunk were applied first).
  Result<std::optional<uint64_t>> TryWrite(const ChunkWrite& w);

  // When the chunk is journaled: copies its bytes [start, end) into `buf`
  // (zeros past what was written), sets *status and returns true.
  bool Read(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t start, uint32_t end, uint8_t* buf,
            Status* status);

  // Waits until no record of the inode could be replayed (UNAVAILABLE after
  // the settle timeout).
  Status Settle(uint64_t inode);
  // While on, the inode's new writes go to its files, so that a cut waiting
  // in Settle is not kept waiting by new records (LockForCut).
  void HoldOff(uint64_t inode, bool on);
  bool Settled(uint64_t inode) const { return !journal_->HasLiveRecords(inode); }

  // Applies every journaled chunk and checkpoints now (tests, shutdown).
  Status ApplyAll();

 private:
  struct Key {
    uint64_t inode, index;
    bool operator==(const Key& o) const { return inode == o.inode && index == o.index; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.inode * 0x9E3779B97F4A7C15ull ^ (k.index * 0xC2B2AE3D27D4EB4Full); }
  };
  struct Entry {
    uint32_t chunk_size = 0;
    uint64_t version = 0;
    std::shared_ptr<const std::string> bytes;  // the chunk's data, as committed
    std::vector<uint64_t> seqs;                // its records, to retire once applied
  };
  struct Queued {
    Key key;
    int64_t at_ms;
  };

  JournaledWrites(const ChunkLayout* layout, ChunkWriter* writer, ChunkLocks* locks, const ChunkStore* store,
                  StoreStats* stats, Options o)
      : layout_(layout), writer_(writer), locks_(locks), store_(store), stats_(stats), opts_(o) {}

  std::optional<Entry> Find(const Key& k) const;
  void Erase(const Key& k);  // map_mu_ held
  // Whether the inode may not journal now: it is being cut, or `more_bytes`
  // would take the bytes held in memory past the journal's size.
  bool HeldOff(uint64_t inode, uint64_t more_bytes) const;
  Status CheckpointNow();
  void Put(const Key& k, Entry e);
  // Writes the chunk's journaled bytes to its file and retires its records.
  // The caller holds the chunk's locks.
  Status ApplyLocked(const Key& k);
  Status ApplyOne(const Key& k);  // takes the locks
  // The applier's way: writes the chunk's file without any sync (one
  // SyncAll covers a whole pass) and hands back the records to retire once
  // that is done. Takes the locks.
  Status ApplyWithoutSync(const Key& k, std::vector<uint64_t>* seqs);
  // Appends one write to the journal and makes `e` its new state.
  Result<std::optional<uint64_t>> Journal(const ChunkWrite& w, Entry e, std::string bytes);
  void ApplierLoop();

  const ChunkLayout* layout_;
  ChunkWriter* writer_;
  ChunkLocks* locks_;
  const ChunkStore* store_;
  StoreStats* stats_;
  const Options opts_;
  std::unique_ptr<WriteJournal> journal_;

  mutable std::mutex map_mu_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
  std::atomic<size_t> count_{0};  // entries_.size(), read without the lock
  uint64_t bytes_held_ = 0;       // of every entry's bytes
  std::multiset<uint64_t> cutting_;
  std::mutex retire_mu_;          // retiring a pass and checkpointing it are one step

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Queued> queue_;  // chunks to apply, oldest first (a chunk may appear more than once)
  std::atomic<bool> stop_{false};  // set under queue_mu_ (for the waits), read anywhere
  std::atomic<int> settling_{0};  // Settle calls waiting: apply everything now
  uint64_t apply_failures_ = 0;   // passes of the applier that failed to apply a chunk
  Status last_apply_error_;
  std::thread applier_;
};

}  // namespace shoal::storage
