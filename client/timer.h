// A single thread that runs closures after a delay (retry backoff without
// parking an I/O thread). Closures must not block for long.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "client/client.h"

namespace shoal::client {

class Client::Timer {
 public:
  Timer() : thread_([this] { Run(); }) {}
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
      due_.emplace(std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms), std::move(fn));
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (stop_) {
        // Run what is left so that every pending callback completes.
        while (!due_.empty()) {
          auto fn = std::move(due_.begin()->second);
          due_.erase(due_.begin());
          l.unlock();
          fn();
          l.lock();
        }
        return;
      }
      if (due_.empty()) {
        cv_.wait(l);
        continue;
      }
      auto when = due_.begin()->first;
      if (std::chrono::steady_clock::now() < when) {
        cv_.wait_until(l, when);
        continue;
      }
      auto fn = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      l.unlock();
      fn();
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> due_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace shoal::client
