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
#include <memory>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/loop/event_loop.h"
#include "common/status.h"
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
  bool fixed = false;  // `buf` lies in the engine's slab (ReadEngine::slab())
};

// Where a chunk store's disk reads go: its own ring (UringReader) or the ring
// of the event loop that serves the request (LoopReadEngine).
class ReadEngine {
 public:
  virtual ~ReadEngine() = default;
  // Starts every read or completes it with a negative errno; never drops one.
  virtual void Submit(const std::vector<UringRead>& ios) = 0;
  // Buffers for reads on this engine (nullptr: none; use the heap). A read
  // into one of them is submitted with `fixed` set.
  virtual BufferSlab* slab() { return nullptr; }
};

// Reads on an event loop's ring; Submit only on that loop's thread, and the
// completions run there too.
//
// With `slab_slots` > 0 it keeps a BufferSlab of that many `slab_slot_size`
// buffers, registered with the loop's ring, so small reads cost no heap
// allocation and no page pinning per read (READ_FIXED). When the ring refuses
// the registration (an old kernel, locked-memory limits, buffers already
// registered by someone else) the slab is still used, with plain reads.
class LoopReadEngine : public ReadEngine {
 public:
  struct Options {
    uint32_t slab_slots = 0;
    uint32_t slab_slot_size = 16 << 10;
  };
  // The loop must be running (the slab is registered on its thread).
  LoopReadEngine(loop::EventLoop* loop, Options options);
  explicit LoopReadEngine(loop::EventLoop* loop) : loop_(loop) {}
  void Submit(const std::vector<UringRead>& ios) override;
  BufferSlab* slab() override { return slab_.get(); }
  loop::EventLoop* loop() const { return loop_; }
  // Whether the slab is registered with the ring (reads go as READ_FIXED).
  bool registered() const { return registered_; }

 private:
  loop::EventLoop* loop_;
  std::shared_ptr<BufferSlab> slab_;
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
