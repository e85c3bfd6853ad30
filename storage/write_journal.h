// The write journal of a target: where the first writes of new small chunks
// are made durable with one sync, shared by every writer that arrives while
// the previous sync runs (group commit), instead of a pending file, a rename
// and three syncs each. The chunk files are written later, off the
// acknowledgement path (uring_chunk_store.cc applies the records, then
// retires them); the journal is what a crash is recovered from until then.
//
// On disk: <target>/journal, a file of fixed size written full of zeros
// once, so that a record's write and sync never change the file's metadata
// (an overwrite: fdatasync flushes the device, no file-system commit). Two
// 4 KiB superblocks (written alternately, the valid one with the higher
// generation wins, so a torn superblock write loses nothing) name where the
// live records start (the checkpoint) and the epoch of the records after it.
// Records follow in a ring: a 4 KiB header (magic, sequence number, epoch,
// chunk, the write's offset, length and version, CRC32C of the data and of
// the header), then the data padded to 4 KiB. A record that does not fit
// before the end of the file starts over at the beginning of the ring. Each
// start-up (Replay) begins a new random epoch, so that bytes an earlier run
// left in the ring — its records past a torn one, or data that happens to
// look like a header — are never taken for this run's records.
//
// Recovery (Replay) reads from the checkpoint: record after record while each
// is whole and carries the next sequence number, looking once at the start of
// the ring when the next one is not where the previous ended. Records after a
// torn one were never acknowledged (a group is acknowledged only when its
// sync returned, and the next group is written only after that), so the scan
// stops there.
//
// Space: a record's bytes may be overwritten only once a durable checkpoint
// lies past it, never merely once it was applied (a replay must still find
// every record after the durable checkpoint). Append refuses a record (writes
// nothing) when the ring has no room; the caller writes the chunk the slow way.
// After a failed write or sync the journal refuses every later Append (the
// ring may hold a torn record, after which no record could be found again);
// the failed records count as retired, so the checkpoint moves past them.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/status.h"
#include "storage/file_env.h"

namespace shoal::storage {

struct JournalRecord {
  uint64_t seq = 0;  // set by Append
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t chunk_size = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint64_t version = 0;  // the chunk's version after this write
  const uint8_t* data = nullptr;
};

class WriteJournal {
 public:
  struct Options {
    uint64_t size_bytes = 64ull << 20;  // the whole file, superblocks included
    std::atomic<uint64_t>* commits = nullptr;  // optional: counts the syncs that made records durable
  };
  struct Stats {
    uint64_t records = 0;   // appended and durable
    uint64_t commits = 0;   // syncs that made them durable
    uint64_t replayed = 0;  // records found by the last Replay
  };

  // Opens <path>, creating (and zero-filling) it when missing or when it has
  // another size than `options.size_bytes` and holds no live record.
  static Result<std::unique_ptr<WriteJournal>> Open(FileEnv* env, const std::string& path, Options options);
  ~WriteJournal();

  // Calls `apply` for every record after the durable checkpoint, in order;
  // stops at the first error and returns it. Then every record counts as
  // retired, and the journal starts a new epoch: call once, at start-up,
  // before any Append, and make what `apply` wrote durable, then
  // Checkpoint(/*force=*/true), before the first Append.
  Status Replay(const std::function<Status(const JournalRecord&)>& apply);

  // Makes the record durable (joining the group being written) and returns
  // its sequence number. nullopt when the ring is full or the journal broken
  // (see above): nothing was written, use another way. An error when the
  // write or sync failed (the record may or may not be found by a replay, as
  // with any failed write).
  Result<std::optional<uint64_t>> Append(JournalRecord record);

  // The record's chunk was written (or made moot): its space may be reused
  // once a checkpoint is made past it.
  void Retire(uint64_t seq);
  // Whether a replay could still apply a record of the inode (one appended,
  // or whose Append failed, after the durable checkpoint).
  bool HasLiveRecords(uint64_t inode) const;
  // Makes durable that every record before the first unretired one is done.
  // No I/O when that point has not moved.
  // `force`: write the superblock even so (a new epoch after Replay).
  Status Checkpoint(bool force = false);
  // Every record with seq <= the result is behind the durable checkpoint: a
  // replay will never apply it again.
  uint64_t checkpointed() const;
  // Waits (at most `timeout_ms`) until checkpointed() >= seq; false on timeout.
  bool WaitCheckpointed(uint64_t seq, int64_t timeout_ms);
  // Waits (at most `timeout_ms`) until !HasLiveRecords(inode); false on timeout.
  bool WaitNoLiveRecords(uint64_t inode, int64_t timeout_ms);

  Stats stats() const;
  // How much of the ring a replay could still read (0..1).
  double used_fraction() const;
  // Largest record data Append takes (the rest of the ring must hold it too).
  uint64_t capacity() const { return size_ - kRingStart; }

  static constexpr uint64_t kRingStart = 8192;  // after the two superblocks

 private:
  struct Live {
    uint64_t pos, bytes;
    bool retired;
  };
  struct Pending {
    uint64_t seq, pos;
    AlignedBuffer* image;  // header + padded data
    bool done = false;
    bool refused = false;  // not written: the journal broke before its group
    Status status;
  };

  WriteJournal(FileEnv* env, std::string path, uint64_t size, std::atomic<uint64_t>* commits)
      : env_(env), path_(std::move(path)), size_(size), commits_(commits) {}
  Status Create();
  Status WriteSuperblock(uint64_t pos, uint64_t seq, uint64_t epoch);
  // Where a record of `bytes` can go, or false when the ring is full.
  bool FindRoom(uint64_t bytes, uint64_t* pos) const;
  // Writes and syncs `group` (mu_ not held); the caller is the group's leader.
  Status WriteGroup(const std::vector<Pending*>& group);

  FileEnv* env_;
  const std::string path_;
  const uint64_t size_;
  std::atomic<uint64_t>* const commits_;
  std::unique_ptr<File> file_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // group done, checkpoint moved
  std::mutex checkpoint_mu_;         // one checkpoint write at a time
  std::mutex io_mu_;                 // one File call at a time (FileEnv's contract)
  uint64_t next_seq_ = 1;
  uint64_t tail_ = kRingStart;       // where the next record goes (before wrapping)
  uint64_t durable_seq_ = 1;         // first record after the durable checkpoint
  uint64_t durable_pos_ = kRingStart;
  uint64_t superblock_gen_ = 0;      // of the last durable superblock; picks the slot, orders the two
  uint64_t epoch_ = 0;               // of this run's records (from the superblock until Replay)
  std::map<uint64_t, Live> live_;    // seq -> record not yet behind the durable checkpoint
  std::map<uint64_t, uint64_t> last_seq_of_;  // inode -> its newest record (pruned at checkpoints)
  std::deque<Pending*> queue_;       // waiting for the next group
  bool leader_active_ = false;
  bool broken_ = false;
  Stats stats_;
};

}  // namespace shoal::storage
