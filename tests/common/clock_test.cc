// The clock seam: ManualClock drives waits with no real delay, exactly at
// their deadlines; SteadyClock waits in real time.
#include "common/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/common/eventually.h"

namespace shoal {
namespace {

using testutil::Eventually;

// A thread that waits on the clock for successive deadlines, like a timer loop,
// and records the clock's time whenever one passes.
class Ticker {
 public:
  Ticker(const Clock* clock, std::vector<int64_t> deadlines)
      : clock_(clock), deadlines_(std::move(deadlines)), thread_([this] { Run(); }) {}
  ~Ticker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::vector<int64_t> fired() {
    std::lock_guard<std::mutex> l(mu_);
    return fired_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (int64_t d : deadlines_) {
      if (clock_->WaitUntil(cv_, l, d, [this] { return stop_; })) return;
      fired_.push_back(clock_->NowMs());
    }
    clock_->WaitUntil(cv_, l, Clock::kNever, [this] { return stop_; });
  }
  const Clock* clock_;
  std::vector<int64_t> deadlines_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<int64_t> fired_;
  std::thread thread_;
};

TEST(ManualClockTest, AWaitEndsExactlyWhenTheClockReachesItsDeadline) {
  ManualClock clock(1000);
  Ticker t(&clock, {1100, 1250});
  ASSERT_TRUE(Eventually([&] { return clock.HasWaitUntil(1100); }));
  clock.Advance(99);
  ASSERT_TRUE(clock.Settle());
  EXPECT_TRUE(t.fired().empty());
  clock.Advance(1);
  ASSERT_TRUE(clock.Settle());  // the ticker recorded and waits again
  EXPECT_EQ(t.fired(), std::vector<int64_t>{1100});
  EXPECT_TRUE(clock.HasWaitUntil(1250));
  clock.Advance(500);  // past the next deadline in one step
  ASSERT_TRUE(clock.Settle());
  EXPECT_EQ(t.fired(), (std::vector<int64_t>{1100, 1600}));
  EXPECT_TRUE(clock.HasWaitUntil(Clock::kNever));
}

TEST(ManualClockTest, ANotifyEndsAWaitWithoutTimePassing) {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    std::unique_lock<std::mutex> l(mu);
    EXPECT_TRUE(clock.WaitUntil(cv, l, clock.NowMs() + 1000, [&] { return ready; }));
    returned = true;
  });
  ASSERT_TRUE(Eventually([&] { return clock.waiters() == 1; }));
  {
    std::lock_guard<std::mutex> l(mu);
    ready = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_TRUE(returned);
  EXPECT_EQ(clock.NowMs(), 1000);
  EXPECT_EQ(clock.waiters(), 0);
}

TEST(ManualClockTest, SleepUntilReturnsOnlyOnceTheClockGetsThere) {
  ManualClock clock(0);
  std::atomic<int64_t> woke_at{-1};
  std::thread sleeper([&] {
    clock.SleepUntil(50);
    woke_at = clock.NowMs();
  });
  ASSERT_TRUE(Eventually([&] { return clock.HasWaitUntil(50); }));
  clock.Advance(49);
  ASSERT_TRUE(clock.Settle());
  EXPECT_EQ(woke_at.load(), -1);
  clock.Advance(1);
  ASSERT_TRUE(clock.Settle());  // a sleep that returned counts as settled
  ASSERT_TRUE(Eventually([&] { return woke_at.load() != -1; }));
  EXPECT_EQ(woke_at.load(), 50);
  sleeper.join();
}

TEST(SteadyClockTest, WaitsInRealTimeAndEndsOnNotify) {
  const Clock* clock = RealClock();
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> l(mu);
  int64_t start = clock->NowMs();
  EXPECT_FALSE(clock->WaitUntil(cv, l, start + 30, [] { return false; }));
  EXPECT_GE(clock->NowMs(), start + 30);
  // A deadline that never passes still ends on the condition.
  EXPECT_TRUE(clock->WaitUntil(cv, l, Clock::kNever, [] { return true; }));
  clock->SleepUntil(clock->NowMs() + 5);
}

}  // namespace
}  // namespace shoal
