#include "client/cli/transfer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "common/aligned_buffer.h"

namespace shoal::cli {

void ShoalFile::ReadAsync(uint64_t offset, size_t length, uint8_t* buf, client::IoCallback done) {
  client_.ReadAsync(file_, offset, length, buf, std::move(done));
}

void ShoalFile::WriteAsync(uint64_t offset, size_t length, const uint8_t* data, client::IoCallback done) {
  client_.WriteAsync(file_, offset, length, data, std::move(done));
}

Status FdSink::Take(uint64_t, const uint8_t* data, size_t length) {
  while (length > 0) {
    ssize_t n = ::write(fd_, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : EIO, "write " + name_);
    data += n;
    length -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status CompareSink::Take(uint64_t offset, const uint8_t* data, size_t length) {
  scratch_.resize(length);
  size_t have = 0;
  while (have < length) {
    ssize_t n = ::pread(fd_, scratch_.data() + have, length - have, static_cast<off_t>(offset + have));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read " + local_);
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  size_t same = 0;
  while (same < have && static_cast<uint8_t>(scratch_[same]) == data[same]) ++same;
  if (same == length) return Status::OK();
  if (same == have)
    return Error(proto::CHECKSUM_MISMATCH, "verify: " + local_ + " ends at byte " + std::to_string(offset + have) +
                                               " but " + remote_ + " goes on");
  return Error(proto::CHECKSUM_MISMATCH, "verify: " + remote_ + " and " + local_ + " differ at byte " +
                                             std::to_string(offset + same));
}

namespace {

// The buffers and what their I/Os reported. The completion callbacks hold it
// by shared_ptr: a transfer waits for every I/O before it returns, and even a
// callback still unwinding after its wake-up touches only live state.
class Buffers {
 public:
  Buffers(size_t block_bytes, int count) {
    slots_.resize(static_cast<size_t>(std::max(count, 1)));
    for (auto& s : slots_) s.buf = AlignedBuffer(block_bytes);
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) free_.push_back(i);
  }

  struct Slot {
    AlignedBuffer buf;
    uint64_t offset = 0;
    size_t length = 0;
    bool done = false;  // its I/O completed; `result` is set
    Result<size_t> result = size_t{0};
  };

  // Takes a free buffer, or -1 when every buffer is lent.
  int TakeFree() {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty()) return -1;
    int i = free_.front();
    free_.pop_front();
    return i;
  }
  void GiveBack(int i) {
    std::lock_guard<std::mutex> l(mu_);
    slots_[i].done = false;
    free_.push_back(i);
  }
  int lent() {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(slots_.size() - free_.size());
  }
  Slot& slot(int i) { return slots_[i]; }

  // The completion callback for an I/O on buffer i: records, wakes, nothing else.
  static client::IoCallback Completion(const std::shared_ptr<Buffers>& self, int i) {
    return [self, i](Result<size_t> r) {
      std::lock_guard<std::mutex> l(self->mu_);
      self->slots_[i].result = std::move(r);
      self->slots_[i].done = true;
      self->completed_.push_back(i);
      self->cv_.notify_all();
    };
  }

  // Waits up to `ms` for buffer i's I/O; true when it completed.
  bool WaitDone(int i, int ms) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return slots_[i].done; });
  }
  // Waits up to `ms` for any completion not yet collected; -1 when none.
  int WaitAny(int ms) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return !completed_.empty(); })) return -1;
    int i = completed_.front();
    completed_.pop_front();
    return i;
  }
  // Forgets buffer i's entry in the completion queue (downloads collect by order).
  void Collected(int i) {
    std::lock_guard<std::mutex> l(mu_);
    completed_.erase(std::find(completed_.begin(), completed_.end(), i));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;  // a slot's fields belong to whoever holds the buffer
  std::deque<int> free_;
  std::deque<int> completed_;
};

// Fills up to `length` bytes from a stream; fewer only at its end.
Result<size_t> ReadFull(int fd, const std::string& name, uint8_t* buf, size_t length) {
  size_t have = 0;
  while (have < length) {
    ssize_t n = ::read(fd, buf + have, length - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read " + name);
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  return have;
}

void Report(const TransferOptions& o, uint64_t bytes) {
  if (o.progress) o.progress(bytes);
}

}  // namespace

Result<uint64_t> Upload(int source, const std::string& source_name, RemoteFile& remote, const TransferOptions& o) {
  auto buffers = std::make_shared<Buffers>(o.block_bytes, o.buffers);
  uint64_t next = 0, acknowledged = 0;
  bool end = false;
  Status error;
  for (;;) {
    // Lend every free buffer while there is something to send.
    while (!end && error.ok()) {
      int i = buffers->TakeFree();
      if (i < 0) break;
      Buffers::Slot& s = buffers->slot(i);
      Result<size_t> n = ReadFull(source, source_name, s.buf.data(), o.block_bytes);
      if (!n.ok() || *n == 0) {
        if (!n.ok()) error = n.status();
        end = true;
        buffers->GiveBack(i);
        break;
      }
      s.offset = next;
      s.length = *n;
      next += *n;
      end = *n < o.block_bytes;
      remote.WriteAsync(s.offset, s.length, s.buf.data(), Buffers::Completion(buffers, i));
    }
    if (buffers->lent() == 0) break;  // nothing in flight and nothing more to send
    int i = buffers->WaitAny(o.progress_interval_ms);
    if (i >= 0) {
      Buffers::Slot& s = buffers->slot(i);
      if (!s.result.ok() && error.ok()) error = s.result.status();
      if (s.result.ok()) acknowledged += s.length;
      // The write is over (acknowledged or failed for good): the buffer may be refilled.
      buffers->GiveBack(i);
    }
    Report(o, acknowledged);
  }
  if (!error.ok()) return error;
  return next;
}

Status Download(RemoteFile& remote, uint64_t size, ByteSink& sink, const TransferOptions& o) {
  auto buffers = std::make_shared<Buffers>(o.block_bytes, o.buffers);
  std::deque<int> in_order;  // lent buffers, by file offset
  uint64_t next = 0, delivered = 0;
  Status error;
  for (;;) {
    while (next < size && error.ok()) {
      int i = buffers->TakeFree();
      if (i < 0) break;
      Buffers::Slot& s = buffers->slot(i);
      s.offset = next;
      s.length = static_cast<size_t>(std::min<uint64_t>(o.block_bytes, size - next));
      next += s.length;
      in_order.push_back(i);
      remote.ReadAsync(s.offset, s.length, s.buf.data(), Buffers::Completion(buffers, i));
    }
    if (in_order.empty()) break;
    // Only the oldest read can go to the sink; later ones wait in their buffers.
    int i = in_order.front();
    if (!buffers->WaitDone(i, o.progress_interval_ms)) {
      Report(o, delivered);
      continue;
    }
    in_order.pop_front();
    buffers->Collected(i);
    Buffers::Slot& s = buffers->slot(i);
    if (error.ok()) {
      if (!s.result.ok()) {
        error = s.result.status();
      } else if (*s.result != s.length) {
        error = Error(proto::OUT_OF_RANGE, "the file ended at byte " + std::to_string(s.offset + *s.result) +
                                               " while it was read (expected " + std::to_string(size) + ")");
      } else {
        error = sink.Take(s.offset, s.buf.data(), s.length);
        if (error.ok()) delivered += s.length;
      }
    }
    // Its read completed and its bytes are out: the buffer may be read into again.
    buffers->GiveBack(i);
    Report(o, delivered);
  }
  return error;
}

}  // namespace shoal::cli
