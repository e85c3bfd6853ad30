#include "common/loop/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "common/log.h"

namespace shoal::loop {

namespace {
bool Transient(int rc) { return rc == -EAGAIN || rc == -EBUSY || rc == -EINTR || rc == -ENOMEM; }
constexpr int kSubmitAttempts = 100;
// A stopping loop waits this long for the kernel to finish I/O it cannot
// cancel (disk reads) before it gives up on it (and leaks the ring rather than
// free memory the kernel may still write).
constexpr int64_t kStopDrainMs = 30000;
}  // namespace

EventLoop::EventLoop(Options options)
    : options_(std::move(options)), manual_clock_(options_.clock != RealClock()), timers_(options_.clock->NowMs()) {}

Result<std::unique_ptr<EventLoop>> EventLoop::Start(Options options) {
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(options)));
  // The ring is made on the loop thread: SINGLE_ISSUER binds it to its creator.
  std::promise<Status> ready;
  auto started = ready.get_future();
  try {
    loop->thread_ = std::thread([l = loop.get(), &ready] {
      Status st = l->Init();
      bool ok = st.ok();
      ready.set_value(std::move(st));
      if (ok) l->Run();
    });
  } catch (const std::system_error& e) {
    return Error(proto::INTERNAL, "cannot start event loop " + loop->name() + ": " + e.what());
  }
  Status st = started.get();
  if (!st.ok()) {
    loop->thread_.join();
    loop->stopped_ = true;
    return st;
  }
  if (loop->manual_clock_) {
    try {
      loop->clock_thread_ = std::thread([l = loop.get()] { l->ClockThread(); });
    } catch (const std::system_error& e) {
      loop->Stop();
      return Error(proto::INTERNAL, "cannot start the clock thread of " + loop->name() + ": " + e.what());
    }
    loop->Post([] {});  // publish the first deadline
  }
  return loop;
}

Status EventLoop::Init() {
  thread_id_.store(std::this_thread::get_id());
  event_fd_ = eventfd(0, EFD_CLOEXEC);
  if (event_fd_ < 0) return Status::FromErrno(errno, "eventfd for " + name());
  io_uring_params p{};
  const unsigned wide = options_.wide_sqes ? IORING_SETUP_SQE128 : 0;
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | wide;
  p.cq_entries = options_.ring_entries * 4;
  int rc = io_uring_queue_init_params(options_.ring_entries, &ring_, &p);
  if (rc == -EINVAL) {  // an older kernel: a plain ring works the same, with more wake-ups
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE | wide;
    p.cq_entries = options_.ring_entries * 4;
    rc = io_uring_queue_init_params(options_.ring_entries, &ring_, &p);
  }
  if (rc < 0) {
    ::close(event_fd_);
    event_fd_ = -1;
    return Status::FromErrno(-rc, "io_uring_queue_init for " + name());
  }
  ring_ok_ = true;
  wake_op_.loop = this;
  wake_op_.done = [](LoopOp* op, int32_t) {
    EventLoop* self = static_cast<WakeOp*>(op)->loop;
    self->wake_armed_ = false;
    self->wakeups_.fetch_add(1, std::memory_order_relaxed);
  };
  return Status::OK();
}

EventLoop::~EventLoop() {
  Stop();
  if (event_fd_ >= 0) ::close(event_fd_);
}

void EventLoop::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (clock_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> l(clock_mu_);
      clock_stop_ = true;
    }
    clock_cv_.notify_all();
    handled_cv_.notify_all();
    clock_thread_.join();
  }
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(post_mu_);
    posted_.push_back(std::move(fn));
  }
  // Only a sleeping loop needs the syscall; a running one drains the queue
  // before it next sleeps (it sets sleeping_ and then looks at the queue
  // under post_mu_, so one of the two sides always sees the other).
  if (sleeping_.load()) {
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof(one));
  }
}

io_uring_sqe* EventLoop::Sqe() {
  for (int attempt = 0; attempt < kSubmitAttempts; ++attempt) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
      ++in_flight_;
      io_uring_sqe_set_data(sqe, nullptr);
      return sqe;
    }
    int rc = io_uring_submit(&ring_);
    if (rc < 0 && !Transient(rc)) {
      LOG_ERROR("{}: io_uring_submit: {}", name(), strerror(-rc));
      return nullptr;
    }
    if (rc <= 0) Reap();  // the CQ may be what is full
  }
  return nullptr;
}

io_uring_sqe* EventLoop::UnawaitedSqe() {
  io_uring_sqe* sqe = Sqe();
  if (sqe) --in_flight_;
  return sqe;
}

TimerWheel::TimerId EventLoop::After(int64_t delay_ms, std::function<void()> fn) {
  return timers_.Add(options_.clock->NowMs() + delay_ms, std::move(fn));
}

TimerWheel::TimerId EventLoop::At(int64_t deadline_ms, std::function<void()> fn) {
  return timers_.Add(deadline_ms, std::move(fn));
}

void EventLoop::AtEndOfIteration(std::function<void()> fn) { end_of_iteration_.push_back(std::move(fn)); }

bool EventLoop::RunPosted() {
  {
    std::lock_guard<std::mutex> l(post_mu_);
    if (posted_.empty()) return false;
    running_.swap(posted_);
  }
  for (auto& fn : running_) fn();
  running_.clear();
  return true;
}

void EventLoop::ArmWakeup() {
  if (wake_armed_) return;
  io_uring_sqe* sqe = Sqe();
  if (!sqe) return;  // retried next iteration; until then the loop polls (see Enter)
  io_uring_prep_read(sqe, event_fd_, &event_buf_, sizeof(event_buf_), 0);
  SetOp(sqe, &wake_op_);
  wake_armed_ = true;
}

void EventLoop::Reap() {
  // One CQE at a time, the head re-read each time: a callback may reap
  // itself (Sqe() does when the rings are full), and no CQE runs twice.
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    unsigned head;
    bool got = false;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      got = true;
      break;
    }
    if (!got) return;
    auto* op = static_cast<LoopOp*>(io_uring_cqe_get_data(cqe));
    int32_t res = cqe->res;
    if (!op || op->awaited) --in_flight_;
    io_uring_cq_advance(&ring_, 1);
    if (op) op->done(op, res);
  }
}

void EventLoop::Enter(bool wait) {
  int rc;
  if (!wait) {
    rc = io_uring_submit_and_get_events(&ring_);
  } else {
    int64_t next = timers_.NextDeadline();
    io_uring_cqe* cqe = nullptr;
    if (next == TimerWheel::kNone && wake_armed_) {
      rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, nullptr, nullptr);
    } else {
      int64_t ms = next == TimerWheel::kNone ? 10 : std::max<int64_t>(0, next - options_.clock->NowMs());
      if (!wake_armed_) ms = std::min<int64_t>(ms, 10);
      __kernel_timespec ts{ms / 1000, (ms % 1000) * 1000000};
      rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
  }
  if (rc < 0 && rc != -ETIME && !Transient(rc)) LOG_ERROR("{}: io_uring_enter: {}", name(), strerror(-rc));
}

void EventLoop::PublishNextDeadline() {
  int64_t next = timers_.NextDeadline();
  {
    std::lock_guard<std::mutex> l(clock_mu_);
    if (next != clock_target_) {
      clock_target_ = next;
      clock_retarget_ = true;
    }
    clock_handled_ = true;
  }
  clock_cv_.notify_all();
  handled_cv_.notify_all();
}

void EventLoop::ClockThread() {
  std::unique_lock<std::mutex> l(clock_mu_);
  while (!clock_stop_) {
    clock_retarget_ = false;
    if (options_.clock->WaitUntil(clock_cv_, l, clock_target_, [&] { return clock_retarget_ || clock_stop_; }))
      continue;  // a new deadline, or stopping
    // The deadline came: wake the loop, and wait (bounded, in real time) until
    // it ran what fell due before waiting on the clock again.
    clock_handled_ = false;
    l.unlock();
    Post([] {});
    {
      uint64_t one = 1;
      (void)!::write(event_fd_, &one, sizeof(one));
    }
    l.lock();
    handled_cv_.wait_for(l, std::chrono::seconds(10), [&] { return clock_handled_ || clock_stop_; });
  }
}

void EventLoop::Run() {
  while (!stopping_.load(std::memory_order_acquire)) {
    iterations_.fetch_add(1, std::memory_order_relaxed);
    bool busy = RunPosted();
    busy |= timers_.Expire(options_.clock->NowMs()) > 0;
    while (!end_of_iteration_.empty()) {
      auto hooks = std::move(end_of_iteration_);
      end_of_iteration_.clear();
      for (auto& fn : hooks) fn();
    }
    ArmWakeup();
    if (manual_clock_) PublishNextDeadline();
    bool wait = !busy;
    if (wait) {
      sleeping_.store(true);
      {
        std::lock_guard<std::mutex> l(post_mu_);
        wait = posted_.empty();
      }
      if (!wait) sleeping_.store(false);
    }
    Enter(wait);
    sleeping_.store(false);
    Reap();
  }
  // Stopping: run what was posted, cancel what is in flight, and wait
  // (bounded) for the kernel to hand every op back.
  RunPosted();
  while (!end_of_iteration_.empty()) {
    auto hooks = std::move(end_of_iteration_);
    end_of_iteration_.clear();
    for (auto& fn : hooks) fn();
  }
  if (io_uring_sqe* sqe = Sqe()) io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
  int64_t give_up = RealClock()->NowMs() + kStopDrainMs;
  while (in_flight_ > 0 && RealClock()->NowMs() < give_up) {
    RunPosted();
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 50 * 1000 * 1000};
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    Reap();
  }
  RunPosted();
  if (in_flight_ > 0) {
    LOG_ERROR("{}: {} I/O operations did not finish within {} ms of stopping; the ring is left open", name(),
              in_flight_, kStopDrainMs);
    return;
  }
  io_uring_queue_exit(&ring_);
  ring_ok_ = false;
}

}  // namespace shoal::loop
