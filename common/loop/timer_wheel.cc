#include "common/loop/timer_wheel.h"

#include <algorithm>

namespace shoal::loop {

TimerWheel::TimerWheel(int64_t now_ms) : now_(now_ms), slots_(kSlots) {}

TimerWheel::TimerId TimerWheel::Add(int64_t deadline_ms, std::function<void()> fn) {
  TimerId id = next_id_++;
  int64_t deadline = std::max(deadline_ms, now_);
  timers_.emplace(id, Timer{deadline, std::move(fn)});
  Place(deadline, id);
  return id;
}

void TimerWheel::Place(int64_t deadline, TimerId id) {
  if (deadline - now_ >= kSlots) {
    overflow_.emplace(Key{deadline, id}, true);
    return;
  }
  size_t slot = static_cast<size_t>(deadline % kSlots);
  slots_[slot].push_back(Key{deadline, id});
  nonempty_[slot / 64] |= uint64_t{1} << (slot % 64);
}

bool TimerWheel::Cancel(TimerId id) {
  // The slot keeps a stale key; Expire skips keys whose timer is gone.
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  overflow_.erase(Key{it->second.deadline, id});
  timers_.erase(it);
  return true;
}

void TimerWheel::PullOverflow() {
  while (!overflow_.empty() && overflow_.begin()->first.first - now_ < kSlots) {
    Key k = overflow_.begin()->first;
    overflow_.erase(overflow_.begin());
    Place(k.first, k.second);
  }
}

size_t TimerWheel::Expire(int64_t now_ms) {
  if (now_ms < now_) return 0;
  // Collect what is due, in (deadline, id) order, before running any of it:
  // callbacks may add timers, which then wait for the next Expire.
  std::vector<Key> due;
  int64_t span = std::min<int64_t>(now_ms - now_ + 1, kSlots);
  for (int64_t t = now_; t < now_ + span; ++t) {
    size_t slot = static_cast<size_t>(t % kSlots);
    if (!(nonempty_[slot / 64] & (uint64_t{1} << (slot % 64)))) continue;
    auto& keys = slots_[slot];
    // Keys here are within one span of now_, so all of them are due when
    // their deadline <= now_ms; later-lapped ones cannot exist.
    auto keep = std::partition(keys.begin(), keys.end(), [&](const Key& k) { return k.first > now_ms; });
    due.insert(due.end(), keep, keys.end());
    keys.erase(keep, keys.end());
    if (keys.empty()) nonempty_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  }
  while (!overflow_.empty() && overflow_.begin()->first.first <= now_ms) {
    due.push_back(overflow_.begin()->first);
    overflow_.erase(overflow_.begin());
  }
  now_ = now_ms + 1;
  PullOverflow();
  std::sort(due.begin(), due.end());
  size_t fired = 0;
  for (const Key& k : due) {
    auto it = timers_.find(k.second);
    if (it == timers_.end()) continue;  // cancelled (possibly by an earlier callback)
    std::function<void()> fn = std::move(it->second.fn);
    timers_.erase(it);
    fn();
    ++fired;
  }
  return fired;
}

int64_t TimerWheel::NextDeadline() const {
  if (timers_.empty()) return kNone;
  int64_t best = overflow_.empty() ? kNone : overflow_.begin()->first.first;
  // Scan the bitmap from now_ onwards; a slot's keys may be stale (cancelled).
  for (int64_t t = now_; t < now_ + kSlots; ++t) {
    size_t slot = static_cast<size_t>(t % kSlots);
    uint64_t word = nonempty_[slot / 64] >> (slot % 64);
    if (!word) {  // skip to the next word
      t += 63 - static_cast<int64_t>(slot % 64);
      continue;
    }
    if (!(word & 1)) continue;
    for (const Key& k : slots_[slot])
      if (timers_.count(k.second)) best = std::min(best, k.first);
    if (best <= t) return best;
  }
  return best;
}

}  // namespace shoal::loop
