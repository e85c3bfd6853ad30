// TimerWheel: the deadlines of one event loop (RPC timeouts, retries, frame
// read deadlines). A hashed wheel of 1 ms ticks: adding and cancelling a timer
// cost O(1); a timer further out than the wheel's span waits in an overflow
// map until the wheel comes round to it.
//
// Timers fire in deadline order, and timers with the same deadline in the
// order they were added. A timer added for a time already past fires on the
// next Expire. Times are milliseconds of the loop's Clock.
//
// Not thread-safe: one loop thread owns it. A callback may add and cancel
// timers (including itself: cancelling a timer that is firing is a no-op).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

namespace shoal::loop {

class TimerWheel {
 public:
  using TimerId = uint64_t;  // never 0
  static constexpr int64_t kNone = INT64_MAX;

  explicit TimerWheel(int64_t now_ms);

  TimerId Add(int64_t deadline_ms, std::function<void()> fn);
  // False when the timer already fired or was cancelled.
  bool Cancel(TimerId id);
  // Fires every timer due at `now_ms` (which must not go backwards); returns
  // how many fired.
  size_t Expire(int64_t now_ms);
  // The earliest pending deadline, kNone when there is none.
  int64_t NextDeadline() const;
  size_t size() const { return timers_.size(); }

 private:
  static constexpr int64_t kSlots = 1024;  // span of the wheel: ~1 s
  struct Timer {
    int64_t deadline;
    std::function<void()> fn;
  };
  // Key of a timer in its slot or in the overflow: (deadline, id) orders it.
  using Key = std::pair<int64_t, TimerId>;

  void Place(int64_t deadline, TimerId id);
  void PullOverflow();  // moves overflow timers that now fit into the wheel

  int64_t now_;  // every deadline before this has fired
  TimerId next_id_ = 1;
  std::unordered_map<TimerId, Timer> timers_;
  std::vector<std::vector<Key>> slots_;  // slot = deadline % kSlots; deadlines within [now_, now_ + kSlots)
  uint64_t nonempty_[kSlots / 64] = {};  // bitmap of slots with entries (may include cancelled ones)
  std::map<Key, bool> overflow_;         // deadlines >= now_ + kSlots
};

}  // namespace shoal::loop
