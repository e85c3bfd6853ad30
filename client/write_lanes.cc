#include "client/write_lanes.h"

#include <random>

namespace shoal::client {

namespace {
// Starts handed over by Release while an outer Release on this thread is
// still running: run by the outer one, so a long queue cannot nest calls.
thread_local std::vector<std::function<void()>>* draining = nullptr;

void RunOrDefer(std::function<void()> fn) {
  if (draining) {
    draining->push_back(std::move(fn));
    return;
  }
  std::vector<std::function<void()>> queue;
  draining = &queue;
  fn();
  while (!queue.empty()) {
    auto next = std::move(queue.back());
    queue.pop_back();
    next();
  }
  draining = nullptr;
}
}  // namespace

WriteLanes::WriteLanes() : lanes_(kLanes) {
  std::random_device rd;
  do {
    client_id_ = (uint64_t{rd()} << 32) | rd();
  } while (client_id_ == 0);  // 0 means "no ledger" to the server
}

uint32_t WriteLanes::LaneOf(uint64_t inode, uint64_t index) {
  uint64_t h = (inode * 0x9E3779B97F4A7C15ull) ^ (index * 0xC2B2AE3D27D4EB4Full);
  return static_cast<uint32_t>((h >> 40) % kLanes);
}

void WriteLanes::Acquire(uint32_t lane, Start start) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(mu_);
    Lane& ln = lanes_[lane];
    if (ln.busy) {
      ln.waiting.push_back(std::move(start));
      return;
    }
    ln.busy = true;
    seq = ++ln.seq;
  }
  start(lane, seq);
}

void WriteLanes::Release(uint32_t lane) {
  Start next;
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(mu_);
    Lane& ln = lanes_[lane];
    if (ln.waiting.empty()) {
      ln.busy = false;
      return;
    }
    next = std::move(ln.waiting.front());
    ln.waiting.pop_front();
    seq = ++ln.seq;
  }
  RunOrDefer([next = std::move(next), lane, seq] { next(lane, seq); });
}

}  // namespace shoal::client
