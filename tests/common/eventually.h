// Waiting in unit tests: poll a condition until it holds, with a real-time
// deadline (never sleep-and-hope). For time the code under test measures, use
// a ManualClock and Advance it instead.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace shoal::testutil {

inline bool Eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace shoal::testutil
