#include "storage/write_journal.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/aligned_buffer.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/random_id.h"

namespace shoal::storage {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kRecordMagic = 0x314C4E524A4853ull;  // "SHJRNL1"
constexpr uint64_t kSuperMagic = 0x315055534A4853ull;   // "SHJSUP1"
constexpr size_t kHeaderCrcAt = 64;
constexpr size_t kSuperCrcAt = 48;

uint64_t Padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{p[i]} << (8 * i);
  return v;
}

void EncodeHeader(const JournalRecord& r, uint64_t epoch, uint32_t data_crc, uint8_t* out) {
  std::memset(out, 0, kBlock);
  Put64(out, kRecordMagic);
  Put64(out + 8, r.seq);
  Put64(out + 16, r.inode);
  Put64(out + 24, r.index);
  Put64(out + 32, r.version);
  Put32(out + 40, r.chunk_size);
  Put32(out + 44, r.offset);
  Put32(out + 48, r.length);
  Put32(out + 52, data_crc);
  Put64(out + 56, epoch);
  Put32(out + kHeaderCrcAt, Crc32c(out, kHeaderCrcAt));
}

// The record header at `in`, if whole, of this run of the journal (`epoch`:
// a record left by an earlier run, or bytes that merely look like one, never
// match) and numbered `seq`.
bool DecodeHeader(const uint8_t* in, uint64_t epoch, uint64_t seq, JournalRecord* r, uint32_t* data_crc) {
  if (Get64(in) != kRecordMagic || Get32(in + kHeaderCrcAt) != Crc32c(in, kHeaderCrcAt)) return false;
  r->seq = Get64(in + 8);
  r->inode = Get64(in + 16);
  r->index = Get64(in + 24);
  r->version = Get64(in + 32);
  r->chunk_size = Get32(in + 40);
  r->offset = Get32(in + 44);
  r->length = Get32(in + 48);
  *data_crc = Get32(in + 52);
  return Get64(in + 56) == epoch && r->seq == seq;
}

}  // namespace

Result<std::unique_ptr<WriteJournal>> WriteJournal::Open(FileEnv* env, const std::string& path, Options options) {
  if (options.size_bytes < kRingStart + 2 * kBlock || options.size_bytes % kBlock != 0)
    return Error(proto::INVALID_ARGUMENT, "journal size " + std::to_string(options.size_bytes) +
                                              " is not a multiple of 4 KiB of at least 16 KiB");
  uint64_t size = options.size_bytes;
  // A journal keeps the size it was made with: records may live in it.
  if (env->Exists(path)) {
    ASSIGN_OR_RETURN(auto f, env->Open(path, OpenMode::kRead, /*direct=*/false));
    ASSIGN_OR_RETURN(size, f->Size());
  }
  if (env->Exists(path + ".new")) RETURN_IF_ERROR(env->Unlink(path + ".new"));  // a creation a crash stopped
  if (!env->Exists(path)) {
    std::unique_ptr<WriteJournal> fresh(new WriteJournal(env, path, options.size_bytes, options.commits));
    RETURN_IF_ERROR(fresh->Create());
    size = options.size_bytes;
  }
  if (size < kRingStart + 2 * kBlock || size % kBlock != 0)
    return Error(proto::CHECKSUM_MISMATCH, path + " has a size no journal has (" + std::to_string(size) + " bytes)");
  std::unique_ptr<WriteJournal> j(new WriteJournal(env, path, size, options.commits));
  ASSIGN_OR_RETURN(j->file_, env->Open(path, OpenMode::kReadWrite, /*direct=*/true));
  AlignedBuffer sb(2 * kBlock);
  ASSIGN_OR_RETURN(size_t got, j->file_->PRead(sb.data(), 2 * kBlock, 0));
  if (got < 2 * kBlock) return Error(proto::IO_ERROR, path + " is shorter than its superblocks");
  for (int slot = 0; slot < 2; ++slot) {
    const uint8_t* s = sb.data() + slot * kBlock;
    if (Get64(s) != kSuperMagic || Get32(s + kSuperCrcAt) != Crc32c(s, kSuperCrcAt) || Get64(s + 16) != j->size_)
      continue;
    const uint64_t gen = Get64(s + 8);
    if (gen < j->superblock_gen_) continue;
    j->superblock_gen_ = gen;
    j->durable_pos_ = Get64(s + 24);
    j->durable_seq_ = Get64(s + 32);
    j->epoch_ = Get64(s + 40);
  }
  // Every journal is made with a superblock: none valid means damage, and
  // starting empty would drop acknowledged writes without a word.
  if (j->superblock_gen_ == 0)
    return Error(proto::CHECKSUM_MISMATCH, path + " has no valid superblock; the writes it holds cannot be found (move it "
                                                  "away to start the target without them)");
  // A checkpoint at the very end of the ring is one at its start.
  if (j->durable_pos_ < kRingStart || j->durable_pos_ > j->size_ || j->durable_pos_ % kBlock != 0)
    return Error(proto::CHECKSUM_MISMATCH, path + ": its superblock names a checkpoint outside the ring");
  j->tail_ = j->durable_pos_;
  j->next_seq_ = j->durable_seq_;
  return j;
}

WriteJournal::~WriteJournal() = default;

Status WriteJournal::Create() {
  const std::string tmp = path_ + ".new";
  {
    ASSIGN_OR_RETURN(auto f, env_->Open(tmp, OpenMode::kCreateTrunc, /*direct=*/true));
    constexpr uint64_t kPiece = 1 << 20;
    AlignedBuffer zeros(kPiece);
    std::memset(zeros.data(), 0, kPiece);
    for (uint64_t off = 0; off < size_; off += kPiece) RETURN_IF_ERROR(f->PWrite(zeros.data(), std::min(kPiece, size_ - off), off));
    file_ = std::move(f);
    RETURN_IF_ERROR(WriteSuperblock(kRingStart, 1, RandomNonZero64()));  // synced with the zeros
    file_.reset();
  }
  RETURN_IF_ERROR(env_->Rename(tmp, path_));
  const size_t slash = path_.rfind('/');
  return env_->SyncDir(slash == std::string::npos ? "." : path_.substr(0, slash));
}

Status WriteJournal::WriteSuperblock(uint64_t pos, uint64_t seq, uint64_t epoch) {
  AlignedBuffer sb(kBlock);
  std::memset(sb.data(), 0, kBlock);
  uint64_t gen;
  {
    std::lock_guard<std::mutex> l(mu_);
    gen = superblock_gen_ + 1;
  }
  Put64(sb.data(), kSuperMagic);
  Put64(sb.data() + 8, gen);
  Put64(sb.data() + 16, size_);
  Put64(sb.data() + 24, pos);
  Put64(sb.data() + 32, seq);
  Put64(sb.data() + 40, epoch);
  Put32(sb.data() + kSuperCrcAt, Crc32c(sb.data(), kSuperCrcAt));
  {
    std::lock_guard<std::mutex> io(io_mu_);
    RETURN_IF_ERROR(file_->PWrite(sb.data(), kBlock, (gen % 2) * kBlock));
    RETURN_IF_ERROR(file_->Sync());
  }
  // Only a superblock known durable moves the generation on: after a failed
  // write the next one goes to the same (suspect) slot, never over the last
  // good one.
  std::lock_guard<std::mutex> l(mu_);
  superblock_gen_ = gen;
  return Status::OK();
}

Status WriteJournal::Replay(const std::function<Status(const JournalRecord&)>& apply) {
  uint64_t pos = durable_pos_, seq = durable_seq_;
  AlignedBuffer header(kBlock);
  AlignedBuffer data;
  bool wrapped_here = false;
  for (;;) {
    JournalRecord r;
    uint32_t data_crc = 0;
    bool whole = false;
    if (pos + kBlock <= size_) {
      ASSIGN_OR_RETURN(size_t got, file_->PRead(header.data(), kBlock, pos));
      whole = got == kBlock && DecodeHeader(header.data(), epoch_, seq, &r, &data_crc);
    }
    if (!whole) {
      if (pos == kRingStart || wrapped_here) break;
      pos = kRingStart;  // the record did not fit before the end of the ring
      wrapped_here = true;
      continue;
    }
    wrapped_here = false;
    const uint64_t padded = Padded(r.length);
    if (r.length > capacity() || pos + kBlock + padded > size_) break;
    if (data.size() < padded) data = AlignedBuffer(padded);
    if (padded) {
      ASSIGN_OR_RETURN(size_t got, file_->PRead(data.data(), padded, pos + kBlock));
      if (got < padded || Crc32c(data.data(), r.length) != data_crc) break;  // torn: never acknowledged
    }
    r.data = data.data();
    RETURN_IF_ERROR(apply(r));
    stats_.replayed++;
    pos += kBlock + padded;
    seq++;
  }
  std::lock_guard<std::mutex> l(mu_);
  next_seq_ = seq;
  tail_ = pos;
  // A new run: records it writes carry a new epoch, so that a later replay
  // never takes what this run left unwritten for an older record. Durable
  // with the next checkpoint, which the caller forces.
  epoch_ = RandomNonZero64();
  return Status::OK();
}

bool WriteJournal::FindRoom(uint64_t bytes, uint64_t* pos) const {
  if (bytes > capacity()) return false;
  if (durable_seq_ == next_seq_) {  // nothing a replay would read
    *pos = tail_ + bytes <= size_ ? tail_ : kRingStart;
    return true;
  }
  if (tail_ > durable_pos_) {
    if (tail_ + bytes <= size_) {
      *pos = tail_;
      return true;
    }
    if (kRingStart + bytes <= durable_pos_) {
      *pos = kRingStart;
      return true;
    }
    return false;
  }
  if (tail_ + bytes <= durable_pos_) {
    *pos = tail_;
    return true;
  }
  return false;
}

Result<std::optional<uint64_t>> WriteJournal::Append(JournalRecord record) {
  const uint64_t padded = Padded(record.length);
  // The image is built outside the lock; only the header waits for the seq.
  auto image = std::make_unique<AlignedBuffer>(kBlock + padded);
  if (record.length) std::memcpy(image->data() + kBlock, record.data, record.length);
  if (padded > record.length) std::memset(image->data() + kBlock + record.length, 0, padded - record.length);
  const uint32_t data_crc = Crc32c(record.data, record.length);

  std::unique_lock<std::mutex> l(mu_);
  uint64_t pos;
  if (broken_ || !FindRoom(kBlock + padded, &pos)) return std::optional<uint64_t>();
  record.seq = next_seq_++;
  last_seq_of_[record.inode] = record.seq;  // a failed record may still be found by a replay
  tail_ = pos + kBlock + padded;
  live_[record.seq] = Live{pos, kBlock + padded, false};
  EncodeHeader(record, epoch_, data_crc, image->data());
  Pending mine{record.seq, pos, image.get(), false, false, Status::OK()};
  queue_.push_back(&mine);
  // Each group is whatever queued while the previous one was being written.
  // Its leader is one of its writers, who writes just that group and steps
  // down: a writer waiting for its own record leads the next.
  for (;;) {
    cv_.wait(l, [&] { return mine.done || !leader_active_; });
    if (mine.done) break;
    leader_active_ = true;
    {
      std::vector<Pending*> group(queue_.begin(), queue_.end());
      queue_.clear();
      const bool refused = broken_;
      Status st;
      if (!refused) {
        l.unlock();
        st = WriteGroup(group);
        l.lock();
      }
      if (!st.ok()) {
        LOG_ERROR("{}: {}; new chunks are written without the journal from now on", path_, st.message());
        broken_ = true;
      }
      for (Pending* p : group) {
        p->status = st;
        p->refused = refused;
        p->done = true;
        if (refused || !st.ok()) live_[p->seq].retired = true;
      }
      if (!refused && st.ok()) {
        stats_.records += group.size();
        stats_.commits++;
        if (commits_) (*commits_)++;
      }
      leader_active_ = false;
      cv_.notify_all();
    }
  }
  if (mine.refused) return std::optional<uint64_t>();
  if (!mine.status.ok()) return mine.status;
  return std::optional<uint64_t>(record.seq);
}

Status WriteJournal::WriteGroup(const std::vector<Pending*>& group) {
  std::lock_guard<std::mutex> io(io_mu_);
  for (Pending* p : group) RETURN_IF_ERROR(file_->PWrite(p->image->data(), p->image->size(), p->pos));
  return file_->Sync();
}

void WriteJournal::Retire(uint64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = live_.find(seq);
  if (it != live_.end()) it->second.retired = true;
}

Status WriteJournal::Checkpoint(bool force) {
  std::lock_guard<std::mutex> one(checkpoint_mu_);
  uint64_t pos, seq, epoch;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = std::find_if(live_.begin(), live_.end(), [](const auto& e) { return !e.second.retired; });
    if (it != live_.end()) {
      seq = it->first;
      pos = it->second.pos;
    } else {
      seq = next_seq_;
      pos = tail_;
    }
    if (seq == durable_seq_ && !force) return Status::OK();
    epoch = epoch_;
  }
  RETURN_IF_ERROR(WriteSuperblock(pos, seq, epoch));
  std::lock_guard<std::mutex> l(mu_);
  durable_seq_ = seq;
  durable_pos_ = pos;
  live_.erase(live_.begin(), live_.lower_bound(seq));
  for (auto it = last_seq_of_.begin(); it != last_seq_of_.end();)
    it = it->second < seq ? last_seq_of_.erase(it) : std::next(it);
  cv_.notify_all();
  return Status::OK();
}

bool WriteJournal::HasLiveRecords(uint64_t inode) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = last_seq_of_.find(inode);
  return it != last_seq_of_.end() && it->second >= durable_seq_;
}

uint64_t WriteJournal::checkpointed() const {
  std::lock_guard<std::mutex> l(mu_);
  return durable_seq_ - 1;
}

bool WriteJournal::WaitCheckpointed(uint64_t seq, int64_t timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return durable_seq_ > seq; });
}

bool WriteJournal::WaitNoLiveRecords(uint64_t inode, int64_t timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] {
    auto it = last_seq_of_.find(inode);
    return it == last_seq_of_.end() || it->second < durable_seq_;
  });
}

double WriteJournal::used_fraction() const {
  std::lock_guard<std::mutex> l(mu_);
  if (durable_seq_ == next_seq_) return 0;
  const uint64_t used = tail_ > durable_pos_ ? tail_ - durable_pos_ : capacity() - (durable_pos_ - tail_);
  return static_cast<double>(used) / static_cast<double>(capacity());
}

WriteJournal::Stats WriteJournal::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

}  // namespace shoal::storage
