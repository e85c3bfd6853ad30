// The clock seam. Every time decision in Shoal — RPC deadlines, retry
// back-off, timers, cache expiry, the reclaim grace period, node liveness —
// reads a Clock and waits through it, never the wall clock (which jumps) and
// never a bare sleep. Real processes use RealClock(), the monotonic steady
// clock; tests use a ManualClock, which moves only when the test advances it,
// so a timeout is tested by stepping past its deadline instead of sleeping.
//
// Times are milliseconds on the clock's own scale: only differences mean
// anything, and they are never persisted or sent to another process.
//
// Not on the seam: socket-level I/O timeouts (connect, handshake reads; the
// kernel enforces them), and latency measurements for metrics.
//
// Thread-safety: every method may be called from any thread; clocks must
// outlive everything that reads them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <thread>

namespace shoal {

class Clock {
 public:
  static constexpr int64_t kNever = INT64_MAX;  // a deadline that never passes

  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;

  // condition_variable::wait_until on this clock. `lock` holds the mutex that
  // guards what `done` reads; whoever changes that state does so under the
  // same mutex and then notifies `cv`. Returns when done() holds or when
  // NowMs() >= deadline_ms, with `lock` held, and returns done(). The lock
  // may be released and re-taken inside, as in any condition-variable wait.
  virtual bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, int64_t deadline_ms,
                         const std::function<bool()>& done) const = 0;

  // Blocks the calling thread until NowMs() >= deadline_ms.
  virtual void SleepUntil(int64_t deadline_ms) const;
};

// The monotonic clock (std::chrono::steady_clock).
class SteadyClock : public Clock {
 public:
  int64_t NowMs() const override;
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, int64_t deadline_ms,
                 const std::function<bool()>& done) const override;
};

// The process-wide steady clock: the default wherever a clock is optional.
const Clock* RealClock();

// A clock for tests: time stands still until Advance().
//
// Advance() wakes every wait whose deadline it reached. Settle() then lets
// the test wait (in real time, bounded) until each thread so woken has come
// back to wait on this clock again — that is, finished the work its deadline
// started (firing a timeout, running a timer) — or returned from SleepUntil.
// After Advance + Settle, nothing that the new time makes due is still
// running, so a test may assert that something did NOT happen yet. Work that
// was not started by the clock (a plain notify) is not tracked.
//
// Advance() takes the mutexes of the waits it wakes: do not call it while
// holding a mutex that code waiting on this clock uses.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1000) : now_(start_ms) {}

  int64_t NowMs() const override { return now_.load(); }
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, int64_t deadline_ms,
                 const std::function<bool()>& done) const override;
  void SleepUntil(int64_t deadline_ms) const override;

  void Advance(int64_t ms);
  // True once every thread woken by Advance waits again (see above); false
  // when that takes longer than `real_timeout_ms` of real time.
  bool Settle(int real_timeout_ms = 10000) const;
  // Waits parked on this clock right now (a test can wait for a thread to
  // reach its wait before advancing).
  int waiters() const;
  // True when a wait is parked with exactly this deadline: something (a
  // timer, a back-off sleep, an RPC deadline) is scheduled for then.
  bool HasWaitUntil(int64_t deadline_ms) const;

 private:
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    int64_t deadline_ms;
    std::thread::id thread;
  };
  void Enter(Waiter* w) const;  // registers; the thread is no longer busy
  void Leave(Waiter* w) const;

  std::atomic<int64_t> now_;
  mutable std::mutex mu_;  // guards the fields below; taken before any waiter's mutex
  mutable std::condition_variable settled_;
  mutable std::list<Waiter*> waiters_;
  mutable std::set<std::thread::id> busy_;  // woken by Advance, not yet waiting again
};

}  // namespace shoal
