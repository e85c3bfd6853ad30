#include "common/loop/event_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/common/eventually.h"

namespace shoal::loop {
namespace {

std::unique_ptr<EventLoop> StartLoop(const Clock* clock = RealClock()) {
  EventLoop::Options o;
  o.name = "test-loop";
  o.clock = clock;
  auto loop = EventLoop::Start(o);
  EXPECT_TRUE(loop.ok()) << loop.status().ToString();
  return std::move(loop).value();
}

TEST(EventLoopTest, TimersFireInOrderOnAManualClock) {
  ManualClock clock(1000);
  auto loop = StartLoop(&clock);
  std::mutex mu;
  std::vector<int> fired;
  std::atomic<int> armed{0};
  loop->Post([&] {
    for (int d : {30, 10, 20, 10}) {
      loop->After(d, [&, d] {
        std::lock_guard<std::mutex> l(mu);
        fired.push_back(d);
      });
    }
    armed = 1;
  });
  ASSERT_TRUE(testutil::Eventually([&] { return armed.load() == 1; }));
  auto fired_now = [&] {
    std::lock_guard<std::mutex> l(mu);
    return fired;
  };
  // The loop's next deadline is visible on the clock, and Advance + Settle
  // returns only after the loop ran what fell due.
  ASSERT_TRUE(testutil::Eventually([&] { return clock.HasWaitUntil(1010); }));
  clock.Advance(15);
  ASSERT_TRUE(clock.Settle());
  EXPECT_EQ(fired_now(), (std::vector<int>{10, 10}));
  ASSERT_TRUE(testutil::Eventually([&] { return clock.HasWaitUntil(1020); }));
  clock.Advance(100);
  ASSERT_TRUE(clock.Settle());
  EXPECT_EQ(fired_now(), (std::vector<int>{10, 10, 20, 30}));
}

TEST(EventLoopTest, TimersFireOnTheRealClockWithoutAnyOtherEvent) {
  auto loop = StartLoop();
  std::atomic<bool> fired{false};
  loop->Post([&] { loop->After(20, [&] { fired = true; }); });
  EXPECT_TRUE(testutil::Eventually([&] { return fired.load(); }));
}

TEST(EventLoopTest, WorkPostedFromManyThreadsRunsOnTheLoopInOrderPerProducer) {
  auto loop = StartLoop();
  constexpr int kThreads = 8, kEach = 5000;
  std::map<int, int> last;  // producer -> last sequence seen (loop thread only)
  std::atomic<int> ran{0}, off_loop{0}, out_of_order{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        loop->Post([&, t, i] {
          if (!loop->InLoopThread()) ++off_loop;
          auto it = last.find(t);
          if (it != last.end() && it->second + 1 != i) ++out_of_order;
          last[t] = i;
          ++ran;
        });
      }
    });
  }
  for (auto& p : producers) p.join();
  ASSERT_TRUE(testutil::Eventually([&] { return ran.load() == kThreads * kEach; }));
  EXPECT_EQ(off_loop.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  // A loop that is kept busy is not woken per item.
  EXPECT_LT(loop->wakeups(), uint64_t{kThreads} * kEach);
}

// An I/O that never completes (a read of a pipe nobody writes: what a hung
// disk looks like to the loop) must not stop socket traffic on the same ring.
struct Echo : LoopOp {
  EventLoop* loop;
  int fd;
  char buf[64];
  bool sending = false;
  std::atomic<int> echoed{0};
  void Arm() {
    io_uring_sqe* sqe = loop->Sqe();
    ASSERT_NE(sqe, nullptr);
    if (sending) io_uring_prep_send(sqe, fd, buf, 1, 0);
    else io_uring_prep_recv(sqe, fd, buf, 1, 0);
    EventLoop::SetOp(sqe, this);
  }
  static void Done(LoopOp* op, int32_t res) {
    auto* e = static_cast<Echo*>(op);
    if (res <= 0) return;  // closed or cancelled
    if (e->sending) ++e->echoed;
    e->sending = !e->sending;
    e->Arm();
  }
};

struct Stuck : LoopOp {
  std::atomic<int32_t> result{1};
  char byte;
  static void Done(LoopOp* op, int32_t res) { static_cast<Stuck*>(op)->result = res; }
};

TEST(EventLoopTest, AnIoThatNeverCompletesDoesNotStopSocketTraffic) {
  auto loop = StartLoop();
  int pipefd[2], sv[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Stuck stuck;
  stuck.done = &Stuck::Done;
  Echo echo;
  echo.done = &Echo::Done;
  echo.loop = loop.get();
  echo.fd = sv[1];
  loop->Post([&] {
    io_uring_sqe* sqe = loop->Sqe();
    io_uring_prep_read(sqe, pipefd[0], &stuck.byte, 1, 0);
    EventLoop::SetOp(sqe, &stuck);
    echo.Arm();
  });
  for (int i = 0; i < 100; ++i) {
    char c = static_cast<char>(i), back = 0;
    ASSERT_EQ(write(sv[0], &c, 1), 1);
    ASSERT_EQ(read(sv[0], &back, 1), 1);  // blocks only if the loop stopped serving the socket
    EXPECT_EQ(back, c);
  }
  EXPECT_TRUE(testutil::Eventually([&] { return echo.echoed.load() == 100; }));
  EXPECT_EQ(stuck.result.load(), 1);  // still pending
  // Stopping cancels what never completes and runs its completion.
  loop->Stop();
  EXPECT_EQ(stuck.result.load(), -ECANCELED);
  EXPECT_EQ(loop->ops_in_flight(), 0u);
  for (int fd : {pipefd[0], pipefd[1], sv[0], sv[1]}) close(fd);
}

// What a FUSE ring entry is to the loop: an operation only the ring's exit
// ends, on a ring with 128-byte SQEs.
TEST(EventLoopTest, UnawaitedOperationsRunButNeitherCountNorHoldUpStop) {
  EventLoop::Options o;
  o.name = "wide-loop";
  o.wide_sqes = true;
  auto started = EventLoop::Start(o);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto loop = std::move(started).value();
  struct Read : LoopOp {
    char byte = 0;
    std::atomic<int> result{1};
    static void Done(LoopOp* op, int32_t res) { static_cast<Read*>(op)->result = res; }
  };
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  Read answered, never;
  for (Read* r : {&answered, &never}) {
    r->done = &Read::Done;
    r->awaited = false;
  }
  std::atomic<uint64_t> in_flight{99};
  loop->Post([&] {
    for (Read* r : {&answered, &never}) {
      io_uring_sqe* sqe = loop->UnawaitedSqe();
      io_uring_prep_read(sqe, pipefd[0], &r->byte, 1, 0);
      EventLoop::SetOp(sqe, r);
    }
    in_flight = loop->ops_in_flight();
  });
  ASSERT_EQ(write(pipefd[1], "x", 1), 1);
  EXPECT_TRUE(testutil::Eventually([&] { return answered.result.load() == 1 && answered.byte == 'x'; }));
  EXPECT_EQ(in_flight.load(), 0u);
  EXPECT_EQ(never.result.load(), 1);  // still with the kernel
  loop->Stop();
  EXPECT_EQ(loop->ops_in_flight(), 0u);
  for (int fd : pipefd) close(fd);
}

TEST(EventLoopTest, WorkPostedBeforeStopRuns) {
  auto loop = StartLoop();
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) loop->Post([&] { ++ran; });
  loop->Stop();
  EXPECT_EQ(ran.load(), 1000);
}

TEST(EventLoopTest, EndOfIterationHooksRunOncePerIterationBeforeSleeping) {
  auto loop = StartLoop();
  std::atomic<int> hooks{0}, posts{0};
  loop->Post([&] {
    // Three requests for a flush in one iteration: the caller coalesces them
    // by registering once; the hook runs before the loop sleeps.
    loop->AtEndOfIteration([&] { ++hooks; });
    ++posts;
  });
  EXPECT_TRUE(testutil::Eventually([&] { return hooks.load() == 1 && posts.load() == 1; }));
}

}  // namespace
}  // namespace shoal::loop
