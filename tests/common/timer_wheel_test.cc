#include "common/loop/timer_wheel.h"

#include <gtest/gtest.h>

#include <vector>

namespace shoal::loop {
namespace {

TEST(TimerWheelTest, FiresInDeadlineOrderThenInOrderAdded) {
  TimerWheel w(1000);
  std::vector<int> fired;
  w.Add(1005, [&] { fired.push_back(3); });
  w.Add(1001, [&] { fired.push_back(1); });
  w.Add(1005, [&] { fired.push_back(4); });
  w.Add(1003, [&] { fired.push_back(2); });
  EXPECT_EQ(w.NextDeadline(), 1001);
  EXPECT_EQ(w.Expire(1000), 0u);
  EXPECT_EQ(w.Expire(1004), 2u);
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
  EXPECT_EQ(w.NextDeadline(), 1005);
  EXPECT_EQ(w.Expire(1100), 2u);
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(w.NextDeadline(), TimerWheel::kNone);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheelTest, CancelledTimersNeverFire) {
  TimerWheel w(0);
  int fired = 0;
  auto a = w.Add(10, [&] { fired += 1; });
  w.Add(10, [&] { fired += 10; });
  EXPECT_TRUE(w.Cancel(a));
  EXPECT_FALSE(w.Cancel(a));
  EXPECT_EQ(w.NextDeadline(), 10);
  w.Expire(50);
  EXPECT_EQ(fired, 10);
}

TEST(TimerWheelTest, TimersBeyondTheWheelSpanWaitTheirTurn) {
  TimerWheel w(0);
  std::vector<int64_t> fired;
  for (int64_t d : {5000, 1500, 999999, 1023, 1024, 3000})
    w.Add(d, [&fired, d] { fired.push_back(d); });
  EXPECT_EQ(w.NextDeadline(), 1023);
  // Step through time in uneven strides: each timer fires exactly once, in order.
  for (int64_t t = 0; t <= 1000000; t += 777) w.Expire(t);
  w.Expire(1000000);
  EXPECT_EQ(fired, (std::vector<int64_t>{1023, 1024, 1500, 3000, 5000, 999999}));
}

TEST(TimerWheelTest, AJumpPastManyTimersFiresThemAllInOrder) {
  TimerWheel w(0);
  std::vector<int64_t> fired;
  for (int64_t d = 3000; d > 0; d -= 7) w.Add(d, [&fired, d] { fired.push_back(d); });
  w.Expire(10000);
  ASSERT_EQ(fired.size(), 429u);
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end()));
}

TEST(TimerWheelTest, ACallbackMayAddAndCancelTimers) {
  TimerWheel w(0);
  std::vector<int> fired;
  TimerWheel::TimerId later = w.Add(20, [&] { fired.push_back(99); });
  w.Add(5, [&] {
    fired.push_back(1);
    w.Cancel(later);
    w.Add(6, [&] { fired.push_back(2); });  // due, but waits for the next Expire
  });
  w.Expire(10);
  EXPECT_EQ(fired, (std::vector<int>{1}));
  w.Expire(30);
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
}

TEST(TimerWheelTest, ATimerInThePastFiresOnTheNextExpire) {
  TimerWheel w(100);
  w.Expire(200);
  bool fired = false;
  w.Add(50, [&] { fired = true; });
  EXPECT_EQ(w.NextDeadline(), 201);
  w.Expire(201);
  EXPECT_TRUE(fired);
}

}  // namespace
}  // namespace shoal::loop
