// A single thread that runs closures after a delay on the client's Clock
// (retry back-off without parking an I/O thread). Closures must not block for
// long. On a ManualClock a closure runs when the test advances past its time.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "client/client.h"
#include "common/clock.h"

namespace shoal::client {

class Client::Timer {
 public:
  explicit Timer(const Clock* clock) : clock_(clock), thread_([this] { Run(); }) {}
  // Runs every closure still pending (early) before it returns.
  ~Timer() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void After(int delay_ms, std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      due_.emplace(clock_->NowMs() + delay_ms, std::move(fn));
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (stop_) {
        // Run what is left so that every pending callback completes.
        while (!due_.empty()) RunFirst(l);
        return;
      }
      int64_t next = due_.empty() ? Clock::kNever : due_.begin()->first;
      if (clock_->NowMs() < next) {
        // Until the first closure is due, a new earlier one arrives, or stop.
        clock_->WaitUntil(cv_, l, next, [&] { return stop_ || (!due_.empty() && due_.begin()->first < next); });
        continue;
      }
      RunFirst(l);
    }
  }
  void RunFirst(std::unique_lock<std::mutex>& l) {
    auto fn = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    l.unlock();
    fn();
    l.lock();
  }

  const Clock* clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<int64_t, std::function<void()>> due_;  // by the clock's time
  bool stop_ = false;
  std::thread thread_;  // last: starts once the fields above exist
};

}  // namespace shoal::client
