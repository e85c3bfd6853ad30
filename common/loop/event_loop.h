// EventLoop: one thread that owns one io_uring and runs everything given to it.
//
// The ring carries the loop's socket I/O and its disk I/O alike. It is set up
// with SINGLE_ISSUER and DEFER_TASKRUN (falling back to a plain ring on a
// kernel without them), so completions are processed only when the loop asks
// for them — never as task work interrupting the thread mid-step.
//
// One iteration: run the work handed in by other threads (Post), fire due
// timers, run the end-of-iteration hooks (connections flush what they queued
// into one gathered send each), then submit every prepared SQE and wait for
// completions in one io_uring_enter — without waiting when there is work left
// — and run each completion's callback.
//
// Clocks: timers run on Options::clock. On the real clock the loop sleeps in
// io_uring_enter until the next deadline. On any other clock (a ManualClock in
// tests) a companion thread waits on that clock for the next deadline and
// wakes the loop, and goes back to waiting only after the loop has run what
// fell due — so ManualClock::Settle() covers the loop's timers too.
//
// Waking: Post() from another thread writes the loop's eventfd only when the
// loop is (about to be) asleep in io_uring_enter; a busy loop is not woken.
//
// Contract:
// - Post() may be called from any thread, including the loop's own; the work
//   runs on the loop thread, in the order posted per producer. Work posted
//   after Stop() began is run by Stop (on the stopping thread) so that nothing
//   posted is lost; it must cope with the loop being gone (see Stop()).
// - Everything else (Sqe, Submit, timers, hooks) only on the loop thread.
// - An SQE's user_data must be a LoopOp* (or 0 for fire-and-forget): its
//   done(op, res) runs exactly once on the loop thread with the CQE's result.
// - Nothing the loop runs may block: no blocking syscalls, no waiting on locks
//   held across I/O, no waiting on another loop.
#pragma once

#include <liburing.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/loop/timer_wheel.h"
#include "common/status.h"

namespace shoal::loop {

// The completion of one SQE, embedded by its owner (no allocation per I/O).
struct LoopOp {
  void (*done)(LoopOp* op, int32_t res) = nullptr;
  // false for an operation taken by UnawaitedSqe(): Stop neither waits for
  // it nor cancels it.
  bool awaited = true;
};

class EventLoop {
 public:
  struct Options {
    std::string name = "loop";
    unsigned ring_entries = 1024;
    const Clock* clock = RealClock();
    // 128-byte SQEs (IORING_SETUP_SQE128), for commands that need the room,
    // such as FUSE's ring entries (client/fuse/fuse_uring.h).
    bool wide_sqes = false;
  };

  // Creates the ring and starts the thread; an error (never an abort) when
  // either cannot be had.
  static Result<std::unique_ptr<EventLoop>> Start(Options options);
  // Stop()s.
  ~EventLoop();

  // Stops the thread after its current iteration and waits for it. Pending
  // timers are dropped; SQEs in flight are cancelled and their completions
  // run (with -ECANCELED or their real result) before Stop returns; work
  // posted before or during Stop runs. Idempotent; not from the loop thread.
  void Stop();

  // ---- any thread ----
  void Post(std::function<void()> fn);
  bool InLoopThread() const { return std::this_thread::get_id() == thread_id_.load(); }
  const std::string& name() const { return options_.name; }
  const Clock& clock() const { return *options_.clock; }

  // ---- loop thread only ----
  // The next free SQE; when the submission queue is full, submits what is
  // prepared first. nullptr only when the kernel refuses to take more (the
  // caller fails its operation).
  io_uring_sqe* Sqe();
  // Sets the SQE's completion.
  static void SetOp(io_uring_sqe* sqe, LoopOp* op) { io_uring_sqe_set_data(sqe, op); }
  // Sqe() for an operation that may stay with the kernel for the ring's whole
  // life and that only the ring's exit ends (a FUSE ring entry waiting for
  // its next request): its LoopOp must have awaited = false, Stop does not
  // wait for it, and its owner must outlive the loop.
  io_uring_sqe* UnawaitedSqe();
  TimerWheel::TimerId After(int64_t delay_ms, std::function<void()> fn);
  TimerWheel::TimerId At(int64_t deadline_ms, std::function<void()> fn);
  bool CancelTimer(TimerWheel::TimerId id) { return timers_.Cancel(id); }
  // Runs `fn` at the end of this iteration, before the ring is entered (for
  // batching: e.g. one gathered send per connection per iteration).
  void AtEndOfIteration(std::function<void()> fn);
  // SQEs whose completion has not run yet.
  uint64_t ops_in_flight() const { return in_flight_; }
  io_uring* ring() { return &ring_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  // Counters (read from any thread; for tests and metrics).
  uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }
  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  explicit EventLoop(Options options);
  Status Init();
  void Run();
  bool RunPosted();  // true when it ran something
  void ArmWakeup();
  void Enter(bool wait);
  void Reap();
  // Non-real clocks: the companion thread, and what the loop tells it.
  void ClockThread();
  void PublishNextDeadline();

  Options options_;
  io_uring ring_{};
  bool ring_ok_ = false;
  int event_fd_ = -1;
  uint64_t event_buf_ = 0;
  struct WakeOp : LoopOp {
    EventLoop* loop = nullptr;
  } wake_op_;
  bool wake_armed_ = false;

  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by post_mu_
  std::vector<std::function<void()>> running_;  // loop thread: the batch being run
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;

  const bool manual_clock_;  // set before the thread starts (see Clocks above)
  TimerWheel timers_;
  std::vector<std::function<void()>> end_of_iteration_;
  uint64_t in_flight_ = 0;
  std::atomic<uint64_t> iterations_{0}, wakeups_{0};
  std::atomic<std::thread::id> thread_id_{};
  std::thread thread_;

  std::mutex clock_mu_;  // guards the fields below
  std::condition_variable clock_cv_, handled_cv_;
  int64_t clock_target_ = TimerWheel::kNone;
  bool clock_retarget_ = false, clock_handled_ = false, clock_stop_ = false;
  std::thread clock_thread_;
};

}  // namespace shoal::loop
