// The disk read engine of the O_DIRECT store: one io_uring, submitted to by
// any thread, reaped by one completion thread.
//
// Contract: Submit() starts every I/O it is given or completes it (inline,
// with a negative errno) — an I/O is never silently dropped. Each I/O's
// `tag->done(tag, res)` runs exactly once, on the completion thread or inline in
// Submit, with res = bytes read or -errno. The destructor stops accepting
// I/O, waits for every submitted one to complete (running its callback) and
// only then tears the ring down.
//
// Thread-safety: Submit may be called concurrently from any thread; callbacks
// must not call Submit on a reader that is being destroyed.
#pragma once

#include <liburing.h>

#include <atomic>
#include <functional>
#include <memory>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/loop/event_loop.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "storage/buffer_slab.h"

namespace shoal::storage {

// Completion of one read, embedded by the caller in its own state (no
// allocation per I/O): done(tag, res) runs exactly once. The same type as an
// event loop's op, so one read can go to either engine.
using UringTag = loop::LoopOp;

struct UringRead {
  int fd = -1;
  void* buf = nullptr;
  uint32_t len = 0;
  uint64_t offset = 0;
  UringTag* tag = nullptr;
  int buf_index = -1;  // >= 0: `buf` lies in that registered slab (READ_FIXED)
};

// Where a chunk store's disk reads go: its own ring (UringReader) or the ring
// of the event loop that serves the request (LoopReadEngine).
class ReadEngine {
 public:
  virtual ~ReadEngine() = default;
  // Starts every read or completes it with a negative errno; never drops one.
  virtual void Submit(const std::vector<UringRead>& ios) = 0;
  // A buffer of at least `len` bytes for a read on this engine; empty when it
  // has none that fits free (the caller uses the heap). A read into it is
  // submitted with the buffer's buf_index().
  virtual SlabBuffer Acquire(uint32_t len) { return SlabBuffer(); }
  // Runs `blocking` (a syscall that may wait on the disk, e.g. opening a chunk
  // file) where it cannot hold up this engine's thread, then `then` back on
  // that thread. This engine: both inline, on the caller's thread.
  virtual void OffThread(std::function<void()> blocking, std::function<void()> then) {
    blocking();
    then();
  }
};

// Reads on an event loop's ring; Submit only on that loop's thread, and the
// completions run there too.
//
// It keeps up to two BufferSlabs registered with the loop's ring: `slab_slots`
// buffers of `slab_slot_size` for small reads and `large_slots` of
// `large_slot_size` for reads up to a chunk, so a read costs no heap
// allocation and no page pinning (READ_FIXED). A read takes a buffer from the
// smallest slab it fits in, or the heap when that slab is all in use. When the
// ring refuses the registration (an old kernel, locked-memory limits, buffers
// already registered by someone else) the slabs are still used, with plain
// reads.
class LoopReadEngine : public ReadEngine {
 public:
  struct Options {
    uint32_t slab_slots = 0;
    uint32_t slab_slot_size = 16 << 10;
    uint32_t large_slots = 0;
    uint32_t large_slot_size = 1 << 20;
    // Where OffThread runs blocking work (it must outlive the engine and be
    // drained while the loop still runs); nullptr: inline, on the loop.
    ThreadPool* helpers = nullptr;
  };
  // The loop must be running (the slab is registered on its thread).
  LoopReadEngine(loop::EventLoop* loop, Options options);
  explicit LoopReadEngine(loop::EventLoop* loop) : loop_(loop) {}
  // On the loop's thread only; from any other (a loop that is stopping runs
  // posted work on the stopping thread) every read completes with -ECANCELED.
  void Submit(const std::vector<UringRead>& ios) override;
  SlabBuffer Acquire(uint32_t len) override;
  // `blocking` on Options::helpers, then `then` posted to the loop.
  void OffThread(std::function<void()> blocking, std::function<void()> then) override;
  loop::EventLoop* loop() const { return loop_; }
  // The slabs, smallest slots first (those with no memory left out).
  const std::vector<std::shared_ptr<BufferSlab>>& slabs() const { return slabs_; }
  // Whether the slabs are registered with the ring (reads go as READ_FIXED).
  bool registered() const { return registered_; }

 private:
  loop::EventLoop* loop_;
  ThreadPool* helpers_ = nullptr;
  std::vector<std::shared_ptr<BufferSlab>> slabs_;
  bool registered_ = false;
};

class UringReader : public ReadEngine {
 public:
  UringReader() = default;
  ~UringReader();
  UringReader(const UringReader&) = delete;
  UringReader& operator=(const UringReader&) = delete;

  Status Init(unsigned entries, const std::string& name);
  void Submit(const std::vector<UringRead>& ios) override;

 private:
  void CompletionLoop();
  // Pushes prepared SQEs to the kernel; bounded retries on transient errors.
  // Requires mu_. False when some SQEs are still waiting in the ring.
  bool SubmitPrepared();
  io_uring_sqe* NextSqe();  // requires mu_; nullptr when the ring stays full
  void FailStranded();      // requires mu_

  std::string name_;
  io_uring ring_{};
  bool ring_ok_ = false;
  std::mutex mu_;  // guards the submission side of the ring
  std::atomic<bool> stopping_{false};  // set under mu_, read without it by the reaper
  std::atomic<bool> stranded_{false};       // SQEs left in the ring by a failed submit
  std::atomic<uint64_t> in_flight_{0};  // SQEs prepared and not yet completed
  std::thread reaper_;
};

}  // namespace shoal::storage
