// A fixed pool of worker threads running queued closures in FIFO order.
// Submit() is thread-safe. The destructor drains the queue and joins.
// When a thread cannot be created the constructor joins the ones it started
// and throws std::system_error (callers turn that into a Status).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shoal {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    try {
      for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Run(); });
    } catch (...) {
      StopAndJoin();
      throw;
    }
  }
  ~ThreadPool() { StopAndJoin(); }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void StopAndJoin() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void Run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace shoal
