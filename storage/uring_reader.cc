#include "storage/uring_reader.h"

#include <sched.h>

#include <cstring>
#include <future>

#include "common/log.h"
#include "common/tsan.h"

namespace shoal::storage {

namespace {
// Transient io_uring_enter failures: the CQ is full (the reaper is draining
// it) or the kernel is short of memory for a moment.
bool Transient(int rc) { return rc == -EAGAIN || rc == -EBUSY || rc == -EINTR || rc == -ENOMEM; }
constexpr int kSubmitAttempts = 100;
constexpr int kStrandedRounds = 200;  // of up to 50 ms each: 10 s
}  // namespace

Status UringReader::Init(unsigned entries, const std::string& name) {
  name_ = name;
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring_, &p);
  if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init for " + name);
  ring_ok_ = true;
  try {
    reaper_ = std::thread([this] { CompletionLoop(); });
  } catch (const std::system_error& e) {
    io_uring_queue_exit(&ring_);
    ring_ok_ = false;
    return Error(proto::INTERNAL, "cannot start the completion thread of " + name + ": " + e.what());
  }
  return Status::OK();
}

UringReader::~UringReader() {
  if (!ring_ok_) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_.store(true, std::memory_order_release);
    // A NOP without user data wakes the reaper, which then drains what is
    // left and exits once nothing is in flight.
    if (io_uring_sqe* sqe = NextSqe()) {
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data(sqe, nullptr);
    }
    SubmitPrepared();
  }
  reaper_.join();
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* UringReader::NextSqe() {
  for (int attempt = 0; attempt < kSubmitAttempts; ++attempt) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    SubmitPrepared();
    sched_yield();
  }
  return nullptr;
}

bool UringReader::SubmitPrepared() {
  for (int attempt = 0; attempt < kSubmitAttempts && io_uring_sq_ready(&ring_) > 0; ++attempt) {
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) continue;
    if (!Transient(rc)) {
      LOG_ERROR("{}: io_uring_submit: {}", name_, strerror(-rc));
      break;
    }
    sched_yield();
  }
  // What is left stays in the ring; the reaper pushes it on its next wake-up.
  bool all = io_uring_sq_ready(&ring_) == 0;
  stranded_.store(!all, std::memory_order_release);
  return all;
}

void UringReader::Submit(const std::vector<UringRead>& ios) {
  std::vector<const UringRead*> refused;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const UringRead& io : ios) {
      io_uring_sqe* sqe = stopping_ ? nullptr : NextSqe();
      if (!sqe) {
        refused.push_back(&io);
        continue;
      }
      io_uring_prep_read(sqe, io.fd, io.buf, io.len, io.offset);
      io_uring_sqe_set_data(sqe, io.tag);
      TsanRelease(io.tag);  // the kernel orders this thread before the reaper
      in_flight_.fetch_add(1, std::memory_order_relaxed);
    }
    SubmitPrepared();
  }
  for (const UringRead* io : refused) io->tag->done(io->tag, stopping_ ? -ECANCELED : -EAGAIN);
}

LoopReadEngine::LoopReadEngine(loop::EventLoop* loop, Options options) : loop_(loop), helpers_(options.helpers) {
  for (auto [slots, size] : {std::pair{options.slab_slots, options.slab_slot_size},
                             std::pair{options.large_slots, options.large_slot_size}}) {
    if (slots == 0) continue;
    auto slab = BufferSlab::Create(slots, size);
    if (slab) slabs_.push_back(std::move(slab));
    else LOG_WARN("{}: no memory for a read buffer slab of {} x {} bytes; those reads use the heap", loop->name(), slots, size);
  }
  if (slabs_.empty()) return;
  // A SINGLE_ISSUER ring takes registrations only from its own thread.
  auto do_register = [this] {
    std::vector<iovec> iovs;
    for (const auto& slab : slabs_) iovs.push_back(iovec{slab->base(), slab->bytes()});
    return io_uring_register_buffers(loop_->ring(), iovs.data(), static_cast<unsigned>(iovs.size()));
  };
  int rc;
  if (loop->InLoopThread()) {
    rc = do_register();
  } else {
    std::promise<int> registered;
    loop->Post([&] { registered.set_value(do_register()); });
    rc = registered.get_future().get();
  }
  registered_ = rc == 0;
  if (registered_) {
    for (size_t i = 0; i < slabs_.size(); ++i) slabs_[i]->set_buf_index(static_cast<int>(i));
  } else {
    LOG_WARN("{}: cannot register the read buffer slabs with the ring ({}); reads into them are not READ_FIXED",
             loop->name(), strerror(-rc));
  }
}

SlabBuffer LoopReadEngine::Acquire(uint32_t len) {
  for (const auto& slab : slabs_)
    if (len <= slab->slot_size()) return slab->Acquire();
  return SlabBuffer();
}

void LoopReadEngine::Submit(const std::vector<UringRead>& ios) {
  if (!loop_->InLoopThread()) {
    for (const UringRead& io : ios) io.tag->done(io.tag, -ECANCELED);
    return;
  }
  for (const UringRead& io : ios) {
    io_uring_sqe* sqe = loop_->Sqe();
    if (!sqe) {
      io.tag->done(io.tag, -EAGAIN);
      continue;
    }
    if (io.buf_index >= 0) io_uring_prep_read_fixed(sqe, io.fd, io.buf, io.len, io.offset, io.buf_index);
    else io_uring_prep_read(sqe, io.fd, io.buf, io.len, io.offset);
    loop::EventLoop::SetOp(sqe, io.tag);
  }
  // Submitted with everything else when the loop next enters the ring.
}

void LoopReadEngine::OffThread(std::function<void()> blocking, std::function<void()> then) {
  if (!helpers_) return ReadEngine::OffThread(std::move(blocking), std::move(then));
  helpers_->Submit([loop = loop_, blocking = std::move(blocking), then = std::move(then)]() mutable {
    blocking();
    loop->Post(std::move(then));
  });
}

void UringReader::CompletionLoop() {
  int stranded_rounds = 0;
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{0, 50 * 1000 * 1000};
    int rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    if (rc < 0 && rc != -ETIME && rc != -EINTR) LOG_ERROR("{}: io_uring_wait_cqe: {}", name_, strerror(-rc));
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      auto* tag = static_cast<UringTag*>(io_uring_cqe_get_data(cqe));
      if (!tag) continue;  // the shutdown NOP
      TsanAcquire(tag);
      tag->done(tag, cqe->res);
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
    }
    io_uring_cq_advance(&ring_, seen);
    // The submission lock only when there is something to do with it: taking
    // it on every pass would queue the reaper behind submitters' syscalls.
    if (!stranded_.load(std::memory_order_acquire) && !stopping_.load(std::memory_order_acquire)) continue;
    std::lock_guard<std::mutex> l(mu_);
    // SQEs a failed submit left behind must not wait for the next caller.
    if (io_uring_sq_ready(&ring_) > 0) SubmitPrepared();
    if (!stopping_) continue;
    if (in_flight_.load() == 0) return;
    // Shutting down: the kernel completes what it took. What it never took
    // (the ring refuses every submit) is completed here, after a bounded wait.
    if (io_uring_sq_ready(&ring_) > 0 && ++stranded_rounds > kStrandedRounds) {
      FailStranded();
      if (in_flight_.load() == 0) return;
    }
  }
}

void UringReader::FailStranded() {
  unsigned mask = ring_.sq.ring_mask;
  for (unsigned i = io_uring_smp_load_acquire(ring_.sq.khead); i != ring_.sq.sqe_tail; ++i) {
    io_uring_sqe* sqe = &ring_.sq.sqes[i & mask];
    auto* tag = reinterpret_cast<UringTag*>(static_cast<uintptr_t>(sqe->user_data));
    io_uring_prep_nop(sqe);  // harmless should the kernel ever take it after all
    io_uring_sqe_set_data(sqe, nullptr);
    if (!tag) continue;
    TsanAcquire(tag);
    tag->done(tag, -ECANCELED);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
  }
  LOG_ERROR("{}: the ring refused to take some reads at shutdown; they failed with ECANCELED", name_);
}

}  // namespace shoal::storage
