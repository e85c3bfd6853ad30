#include "common/clock.h"

#include <chrono>

namespace shoal {

void Clock::SleepUntil(int64_t deadline_ms) const {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> l(mu);
  while (NowMs() < deadline_ms) WaitUntil(cv, l, deadline_ms, [] { return false; });
}

int64_t SteadyClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool SteadyClock::WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, int64_t deadline_ms,
                            const std::function<bool()>& done) const {
  // Deadlines beyond a year are waited for as "never": converting them to
  // the steady clock's nanoseconds could overflow.
  constexpr int64_t kYearMs = 365ll * 24 * 3600 * 1000;
  if (deadline_ms - NowMs() > kYearMs) {
    cv.wait(lock, done);
    return true;
  }
  std::chrono::steady_clock::time_point when{std::chrono::milliseconds(deadline_ms)};
  // NowMs() truncates, so at `when` it reads at least deadline_ms.
  return cv.wait_until(lock, when, done);
}

const Clock* RealClock() {
  static const SteadyClock clock;
  return &clock;
}

// ManualClock: a wait registers itself (its mutex and condition variable) so
// that Advance can wake it. Registration happens with the caller's lock
// released, so the lock order is always ManualClock::mu_ before a waiter's
// mutex; Advance notifies under the waiter's mutex, so a wait that checked the
// time just before an Advance cannot miss its wake-up.

void ManualClock::Enter(Waiter* w) const {
  std::lock_guard<std::mutex> l(mu_);
  if (busy_.erase(w->thread)) settled_.notify_all();
  waiters_.push_back(w);
}

void ManualClock::Leave(Waiter* w) const {
  std::lock_guard<std::mutex> l(mu_);
  waiters_.remove(w);
}

bool ManualClock::WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, int64_t deadline_ms,
                            const std::function<bool()>& done) const {
  Waiter w{lock.mutex(), &cv, deadline_ms, std::this_thread::get_id()};
  lock.unlock();
  Enter(&w);
  lock.lock();
  // `done` is checked after re-taking the lock: a change made while it was
  // released is seen here, its notify having gone to nobody.
  while (!done() && NowMs() < deadline_ms) cv.wait(lock);
  lock.unlock();
  Leave(&w);
  lock.lock();
  return done();
}

void ManualClock::SleepUntil(int64_t deadline_ms) const {
  Clock::SleepUntil(deadline_ms);
  // A sleep is not a loop that comes back to wait: it is settled once it returns.
  std::lock_guard<std::mutex> l(mu_);
  if (busy_.erase(std::this_thread::get_id())) settled_.notify_all();
}

void ManualClock::Advance(int64_t ms) {
  std::lock_guard<std::mutex> l(mu_);
  int64_t now = now_ += ms;
  for (Waiter* w : waiters_) {
    if (w->deadline_ms > now) continue;
    busy_.insert(w->thread);
    std::lock_guard<std::mutex> wl(*w->mu);
    w->cv->notify_all();
  }
}

bool ManualClock::Settle(int real_timeout_ms) const {
  std::unique_lock<std::mutex> l(mu_);
  return settled_.wait_for(l, std::chrono::milliseconds(real_timeout_ms), [this] { return busy_.empty(); });
}

int ManualClock::waiters() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(waiters_.size());
}

bool ManualClock::HasWaitUntil(int64_t deadline_ms) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const Waiter* w : waiters_)
    if (w->deadline_ms == deadline_ms) return true;
  return false;
}

}  // namespace shoal
