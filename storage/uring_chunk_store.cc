// The O_DIRECT chunk store: the pieces put together. Layout on disk
// (chunk_layout.h), which chunks exist (chunk_inventory.h), open-file cache
// (chunk_file_cache.h), write path (chunk_writer.h), locking (chunk_locks.h)
// and the io_uring read engine (uring_reader.h). Nothing goes through the
// page cache.
//
// A read that hits the cache costs one disk read; a miss opens the file (the
// inventory is asked only when it is missing), reads header and data at once
// and caches the file if no mutation raced it.
#include <algorithm>
#include <cstring>
#include <map>

#include "common/log.h"
#include "storage/chunk_file_cache.h"
#include "storage/chunk_inventory.h"
#include "storage/chunk_layout.h"
#include "storage/chunk_locks.h"
#include "storage/chunk_store.h"
#include "storage/chunk_writer.h"
#include "storage/journaled_writes.h"
#include "storage/uring_reader.h"

namespace shoal::storage {
namespace {

uint32_t RoundUp(uint64_t n) { return static_cast<uint32_t>((n + kBlockSize - 1) / kBlockSize * kBlockSize); }

struct BatchState {
  std::atomic<size_t> remaining;
  std::function<void()> done;
};

struct OpState;
struct IoSlot : UringTag {
  OpState* st = nullptr;
  int32_t res = 0;
};

// One ReadOp in flight: a hit reads the data of a cached file; a miss reads
// header and data of a file it just opened.
struct OpState {
  ReadOp* op = nullptr;
  BatchState* batch = nullptr;
  class UringChunkStore* store = nullptr;
  std::shared_ptr<const ChunkFile> file;  // hit: the cached file
  std::unique_ptr<File> opened;           // miss: opened by OpenMiss, header unread
  bool miss = false;                      // not in the cache: OpenMiss, then StartMiss
  bool served = false;                    // from the journaled copy: no I/O
  Status open_status;                     // miss: OpenMiss's result, for StartMiss
  ChunkFileCache::Ticket ticket{};
  AlignedBuffer header_buf;
  uint32_t start = 0;  // aligned range [start, end) of the chunk's data, read into buf
  uint32_t end = 0;
  uint8_t* buf = nullptr;  // op->slab_buffer's or op->buffer's bytes
  std::atomic<int> pending{0};
  IoSlot header_io, data_io;
};

class UringChunkStore : public ChunkStore {
 public:
  UringChunkStore(const std::string& dir, UringOptions opts)
      : layout_(opts.env ? opts.env : RealFileEnv(), dir), opts_(opts), cache_(opts.cache_entries) {}

  Status Init() {
    RETURN_IF_ERROR(layout_.Prepare());
    ASSIGN_OR_RETURN(inventory_, ChunkInventory::Open(layout_));
    writer_ = std::make_unique<ChunkWriter>(&layout_, &cache_, inventory_.get(), &stats_, this);
    const std::string journal_path = layout_.dir() + "/journal";
    if (!opts_.journal_bytes && layout_.env()->Exists(journal_path)) {
      // Turned off: what the journal still holds is replayed (opening it
      // does), then it goes.
      ASSIGN_OR_RETURN(auto old, JournaledWrites::Open(layout_, writer_.get(), &locks_, this, &stats_, {}));
      old.reset();
      RETURN_IF_ERROR(layout_.env()->Unlink(journal_path));
      RETURN_IF_ERROR(layout_.env()->SyncDir(layout_.dir()));
    }
    if (opts_.journal_bytes) {
      JournaledWrites::Options jo;
      jo.journal_bytes = opts_.journal_bytes;
      jo.max_chunk_bytes = opts_.journal_max_chunk_bytes;
      jo.apply_delay_ms = opts_.journal_apply_delay_ms;
      ASSIGN_OR_RETURN(journal_, JournaledWrites::Open(layout_, writer_.get(), &locks_, this, &stats_, jo));
    }
    return reader_.Init(opts_.ring_entries, "target " + layout_.dir());
  }

  void ReadOn(std::vector<ReadOp*> ops, std::function<void()> done, ReadEngine* engine) override {
    if (ops.empty()) return done();
    auto* batch = new BatchState{ops.size(), std::move(done)};
    std::vector<UringRead> ios;
    std::vector<OpState*> misses;
    for (ReadOp* op : ops) {
      auto* st = new OpState;
      st->op = op;
      st->batch = batch;
      st->store = this;
      Status v = Prepare(st, &ios, engine);
      if (v.ok() && st->pending == 0 && st->miss) {
        misses.push_back(st);
      } else if (!v.ok() || st->pending == 0) {
        if (!v.ok()) op->status = v;
        Finish(st);
      }
    }
    if (!ios.empty()) (engine ? engine : &reader_)->Submit(ios);
    // Opening a chunk file may wait on the disk (directory blocks, inode):
    // never on the engine's loop.
    ReadEngine* on = engine ? engine : &reader_;
    for (OpState* st : misses)
      on->OffThread([this, st] { st->open_status = OpenMiss(st); }, [this, st, on] { StartMiss(st, on); });
  }

  Result<uint64_t> Write(const ChunkWrite& w) override {
    std::shared_lock<std::shared_mutex> il(locks_.Inode(w.inode));
    std::lock_guard<std::mutex> cl(locks_.Chunk(w.inode, w.index));
    std::optional<uint64_t> journaled;
    if (journal_) {
      ASSIGN_OR_RETURN(journaled, journal_->TryWrite(w));
    }
    ASSIGN_OR_RETURN(uint64_t version, journaled ? Result<uint64_t>(*journaled) : writer_->Apply(w));
    stats_.writes++;
    stats_.write_bytes += w.length;
    return version;
  }

  Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) override {
    RETURN_IF_ERROR(CheckChunkSize(chunk_size));
    ASSIGN_OR_RETURN(auto il, LockForCut(inode));
    // Announced before any file goes: a chunk missing under the mark is a hole.
    const uint64_t first_gone = (length + chunk_size - 1) / chunk_size;
    ASSIGN_OR_RETURN(auto indexes, layout_.ListChunks(inode));
    ASSIGN_OR_RETURN(auto listed, inventory_->List(inode));
    const bool cuts = std::any_of(indexes.begin(), indexes.end(), [&](uint64_t i) { return i >= first_gone; }) ||
                      (!listed.empty() && listed.back() >= first_gone);
    if (cuts) RETURN_IF_ERROR(inventory_->BeginCut(inode, first_gone));
    for (uint64_t idx : indexes) {
      uint64_t start = idx * chunk_size;
      std::lock_guard<std::mutex> cl(locks_.Chunk(inode, idx));
      if (idx >= first_gone) {
        RETURN_IF_ERROR(writer_->Delete(inode, idx));
      } else if (length - start < chunk_size) {
        RETURN_IF_ERROR(writer_->Cut(inode, idx, chunk_size, static_cast<uint32_t>(length - start)));
      }
    }
    // Deletions here, or by an earlier attempt whose sync failed.
    RETURN_IF_ERROR(layout_.SyncIfNotDurable(layout_.InodeDir(inode)));
    return cuts ? inventory_->EndCut(inode, first_gone) : Status::OK();
  }

  Status Remove(uint64_t inode) override {
    ASSIGN_OR_RETURN(auto il, LockForCut(inode));
    // The cache holds only files that are in the directory: forget exactly those.
    ASSIGN_OR_RETURN(auto indexes, layout_.ListChunks(inode));
    ASSIGN_OR_RETURN(auto listed, inventory_->List(inode));
    // Announced first, as a cut of everything: a remove that fails halfway
    // leaves holes, not losses.
    if (!indexes.empty() || !listed.empty()) RETURN_IF_ERROR(inventory_->BeginCut(inode, 0));
    Status st = layout_.RemoveInode(inode);
    for (uint64_t idx : indexes) cache_.Erase(inode, idx);
    RETURN_IF_ERROR(st);
    return inventory_->RemoveInode(inode);  // unlisted (and unmarked) once the files are gone
  }

  // As Remove, for many inodes with few syncs: one durable write marks them
  // all as being cut, their files go one inode at a time (each under its
  // inode lock, so each is atomic with respect to its writes), then each
  // shard touched is synced once, and only then are they unlisted.
  Status RemoveMany(const std::vector<uint64_t>& inodes, std::vector<uint64_t>* failed) override {
    std::vector<uint64_t> todo(inodes);
    std::sort(todo.begin(), todo.end());
    todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
    if (Status st = inventory_->BeginRemoval(todo); !st.ok()) {
      failed->insert(failed->end(), todo.begin(), todo.end());
      return st;
    }
    Status first_failure;
    auto fail = [&](uint64_t inode, const Status& st) {
      failed->push_back(inode);
      if (first_failure.ok()) first_failure = st;
    };
    std::map<std::string, std::vector<uint64_t>> by_shard;  // files gone, names not yet durable
    for (uint64_t inode : todo) {
      auto il = LockForCut(inode);
      if (!il.ok()) {
        fail(inode, il.status());
        continue;
      }
      // The mark is checked again under the lock: a truncate that ended
      // since BeginRemoval may have cleared it (then this syncs once more).
      auto indexes = layout_.ListChunks(inode);
      Status st = indexes.ok() ? inventory_->BeginCut(inode, 0) : indexes.status();
      if (st.ok()) st = layout_.UnlinkInode(inode);
      if (indexes.ok())
        for (uint64_t idx : *indexes) cache_.Erase(inode, idx);
      if (!st.ok()) {
        fail(inode, st);
        continue;
      }
      by_shard[layout_.ShardDir(inode)].push_back(inode);
    }
    for (const auto& [shard, gone] : by_shard) {
      Status synced = layout_.SyncIfNotDurable(shard);
      for (uint64_t inode : gone) {
        if (!synced.ok()) {
          fail(inode, synced);
          continue;
        }
        std::unique_lock<std::shared_mutex> il(locks_.Inode(inode));
        if (Status st = inventory_->RemoveInode(inode); !st.ok()) fail(inode, st);
      }
    }
    return first_failure;
  }

  Status ApplyJournal() { return journal_ ? journal_->ApplyAll() : Status::OK(); }

  static void OnIo(UringTag* tag, int32_t res) {
    auto* slot = static_cast<IoSlot*>(tag);
    slot->res = res;
    OpState* st = slot->st;
    if (--st->pending == 0) st->store->Finish(st);
  }

 private:
  // The inode's lock, exclusively, once none of its journaled writes could be
  // replayed any more (journaled_writes.h: a replay after a cut would bring
  // cut bytes back). Bounded: a writer that keeps journaling the inode
  // meanwhile makes it UNAVAILABLE.
  Result<std::unique_lock<std::shared_mutex>> LockForCut(uint64_t inode) {
    if (!journal_) return std::unique_lock<std::shared_mutex>(locks_.Inode(inode));
    // New writes of the inode skip the journal meanwhile: the wait ends.
    journal_->HoldOff(inode, true);
    struct Release {
      JournaledWrites* j;
      uint64_t inode;
      ~Release() { j->HoldOff(inode, false); }
    } release{journal_.get(), inode};
    for (int attempt = 0; attempt < 3; ++attempt) {
      RETURN_IF_ERROR(journal_->Settle(inode));
      std::unique_lock<std::shared_mutex> il(locks_.Inode(inode));
      if (journal_->Settled(inode)) return il;
    }
    return Error(proto::UNAVAILABLE, "inode " + std::to_string(inode) + " kept being written while it was being cut");
  }

  static void AddIo(std::vector<UringRead>* ios, OpState* st, IoSlot* slot, int fd, void* buf, uint32_t len,
                    uint64_t off, int buf_index = -1) {
    slot->done = &OnIo;
    slot->st = st;
    ios->push_back(UringRead{fd, buf, len, off, slot, buf_index});
  }

  // Sets up the op's buffer and, for a cached chunk file, the I/O it needs
  // (none when it can finish now); a chunk not in the cache is marked `miss`.
  // The buffer comes from the engine's slab when it has a free slot that
  // fits, else from the heap.
  Status Prepare(OpState* st, std::vector<UringRead>* ios, ReadEngine* engine) {
    ReadOp* op = st->op;
    RETURN_IF_ERROR(CheckChunkSize(op->chunk_size));
    if (uint64_t{op->offset} + op->length > op->chunk_size) return Error(proto::INVALID_ARGUMENT, "read leaves the chunk");
    st->start = op->offset / kBlockSize * kBlockSize;
    st->end = RoundUp(uint64_t{op->offset} + op->length);
    if (engine && st->end > st->start) op->slab_buffer = engine->Acquire(st->end - st->start);
    st->buf = op->slab_buffer ? op->slab_buffer.data() : (op->buffer = AlignedBuffer(st->end - st->start)).data();
    const uint32_t hsize = ChunkHeaderSize(op->chunk_size);
    // A journaled chunk is looked for first: its file, once written, is in
    // the cache before the journaled copy goes.
    if (journal_ && journal_->Read(op->inode, op->index, op->chunk_size, st->start, st->end, st->buf, &op->status)) {
      st->served = true;
      return Status::OK();
    }
    st->file = cache_.Lookup(op->inode, op->index);
    if (st->file) {
      if (st->file->header.chunk_size != op->chunk_size)
        return Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
      uint32_t stored_end = std::min(st->end, RoundUp(st->file->header.data_len));
      if (stored_end > st->start) {
        st->pending = 1;
        AddIo(ios, st, &st->data_io, st->file->file->fd(), st->buf, stored_end - st->start, hsize + st->start,
              op->slab_buffer.buf_index());
      }
      return Status::OK();
    }
    st->miss = true;  // opened and read by ReadOn, off the engine's thread
    return Status::OK();
  }

  // A miss, on a helper thread: opens the chunk file (st->opened stays empty
  // for a chunk never written, which reads as zeros).
  Status OpenMiss(OpState* st) {
    ReadOp* op = st->op;
    st->ticket = cache_.BeginMiss(op->inode, op->index);
    auto opened = layout_.env()->Open(layout_.ChunkPath(op->inode, op->index), OpenMode::kRead, /*direct=*/true);
    if (!opened.ok() && opened.status().code() != proto::NOT_FOUND) return opened.status();
    if (!opened.ok() && op->inode < lost_below())
      return Error(proto::DATA_LOST, "chunk " + std::to_string(op->index) + " of inode " + std::to_string(op->inode) +
                                         " was lost with its disk");
    if (!opened.ok()) {
      ASSIGN_OR_RETURN(auto file, OpenMissing(op->inode, op->index));
      if (!file) return Status::OK();  // never written (or cut away): zeros
      opened = std::move(file);
    }
    st->opened = std::move(*opened);
    st->header_buf = AlignedBuffer(ChunkHeaderSize(op->chunk_size));
    return Status::OK();
  }

  // A miss, back on the engine's thread: reads header and data of the file
  // OpenMiss opened, or finishes the op.
  void StartMiss(OpState* st, ReadEngine* engine) {
    ReadOp* op = st->op;
    if (!st->open_status.ok()) op->status = st->open_status;
    if (!st->open_status.ok() || !st->opened) return Finish(st);
    std::vector<UringRead> ios;
    st->pending = 2;
    const int fd = st->opened->fd();
    const uint32_t hsize = ChunkHeaderSize(op->chunk_size);
    AddIo(&ios, st, &st->header_io, fd, st->header_buf.data(), hsize, 0);
    AddIo(&ios, st, &st->data_io, fd, st->buf, st->end - st->start, hsize + st->start, op->slab_buffer.buf_index());
    engine->Submit(ios);
  }

  // A chunk whose file was missing: nullptr for a hole, DATA_LOST for a loss,
  // or the file a concurrent write has just made. Reads take no lock, so when
  // the inventory lists the chunk, the answer is checked again with its
  // writers and cuts held off: the file may have gone with a cut (or come
  // with a write) between the open and the lookup. Rare; it runs where
  // OpenMiss does, off the loop.
  Result<std::unique_ptr<File>> OpenMissing(uint64_t inode, uint64_t index) {
    ASSIGN_OR_RETURN(bool lost, inventory_->IsLost(inode, index));
    if (!lost) return std::unique_ptr<File>();
    std::shared_lock<std::shared_mutex> il(locks_.Inode(inode));
    std::lock_guard<std::mutex> cl(locks_.Chunk(inode, index));
    auto opened = layout_.env()->Open(layout_.ChunkPath(inode, index), OpenMode::kRead, /*direct=*/true);
    if (opened.ok()) return opened;
    if (opened.status().code() != proto::NOT_FOUND) return opened.status();
    ASSIGN_OR_RETURN(lost, inventory_->IsLost(inode, index));
    if (!lost) return std::unique_ptr<File>();
    return Error(proto::DATA_LOST, "chunk " + std::to_string(index) + " of inode " + std::to_string(inode) +
                                       " was written but its file is missing from " + layout_.dir());
  }

  // Verifies what was read and completes the op (and the batch with its last op).
  void Finish(OpState* st) {
    ReadOp* op = st->op;
    if (op->status.ok() && st->buf) op->status = Complete(st);
    if (op->status.ok()) {
      op->data = st->buf + (op->offset - st->start);
      stats_.reads++;
      stats_.read_bytes += op->length;
    } else {
      op->data = nullptr;
      if (op->status.code() == proto::CHECKSUM_MISMATCH) {
        stats_.checksum_errors++;
        LOG_ERROR("{}: inode {} chunk {}: {}", layout_.dir(), op->inode, op->index, op->status.message());
      } else if (op->status.code() == proto::IO_ERROR || op->status.code() == proto::DATA_LOST) {
        stats_.io_errors++;
      }
    }
    BatchState* batch = st->batch;
    delete st;
    if (--batch->remaining == 0) {
      batch->done();
      delete batch;
    }
  }

  Status Complete(OpState* st) {
    ReadOp* op = st->op;
    const uint32_t want = st->end - st->start;
    if (st->served) return op->status;
    if (!st->file && !st->opened) {  // never written
      if (want) std::memset(st->buf, 0, want);
      return Status::OK();
    }
    if (!st->file) {
      if (st->header_io.res < 0) return Status::FromErrno(-st->header_io.res, "read chunk header");
      auto file = std::make_shared<ChunkFile>();
      RETURN_IF_ERROR(DecodeChunkHeader(st->header_buf.data(), st->header_io.res, op->chunk_size, &file->header));
      file->file = std::move(st->opened);
      st->file = file;
      cache_.InsertIfCurrent(op->inode, op->index, st->ticket, file);
    }
    const ChunkHeader& h = st->file->header;
    uint32_t stored_end = std::min(st->end, RoundUp(h.data_len));
    uint32_t stored = stored_end > st->start ? stored_end - st->start : 0;
    if (stored > 0) {
      if (st->data_io.res < 0) return Status::FromErrno(-st->data_io.res, "read chunk data");
      if (static_cast<uint32_t>(st->data_io.res) < stored)
        return Error(proto::IO_ERROR, "chunk " + std::to_string(op->index) + " of inode " +
                                          std::to_string(op->inode) + " is shorter than its header says");
      RETURN_IF_ERROR(VerifyBlocks(h, st->start / kBlockSize, st->buf, stored));
    }
    if (want > stored) std::memset(st->buf + stored, 0, want - stored);
    return Status::OK();
  }

  ChunkLayout layout_;
  UringOptions opts_;
  ChunkFileCache cache_;
  ChunkLocks locks_;
  std::unique_ptr<ChunkInventory> inventory_;
  std::unique_ptr<ChunkWriter> writer_;
  std::unique_ptr<JournaledWrites> journal_;  // after the writer: applies through it until destroyed
  UringReader reader_;  // last: destroyed first, completing every read before the rest goes
};

}  // namespace

Status ApplyJournaledWrites(ChunkStore* store) {
  auto* uring = dynamic_cast<UringChunkStore*>(store);
  return uring ? uring->ApplyJournal() : Status::OK();
}

Result<std::unique_ptr<ChunkStore>> OpenUringChunkStore(const std::string& dir, UringOptions options) {
  auto store = std::make_unique<UringChunkStore>(dir, options);
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<ChunkStore>(std::move(store));
}

}  // namespace shoal::storage
