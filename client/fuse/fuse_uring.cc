#include "client/fuse/fuse_uring.h"

#include <linux/fuse.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <tuple>

#include "client/fuse/fuse_ops.h"
#include "common/log.h"
#include "common/loop/event_loop.h"

namespace shoal::fuse {

// The kernel's FUSE-over-io_uring ABI (include/uapi/linux/fuse.h of Linux
// 6.14+); Debian 12's headers predate it.
namespace abi {
constexpr uint32_t kOverIoUringFlags2 = 1u << (41 - 32);  // FUSE_OVER_IO_URING
constexpr uint32_t kCmdRegister = 1;
constexpr uint32_t kCmdCommitAndFetch = 2;
constexpr size_t kHeaderArea = 128;  // in_out and op_in are 128 bytes each
constexpr size_t kMinPayload = 8192;  // FUSE_MIN_READ_BUFFER

struct EntryInOut {
  uint64_t flags;
  uint64_t commit_id;  // the request's unique
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};

struct RequestHeaders {
  uint8_t in_out[kHeaderArea];  // fuse_in_header in, fuse_out_header out
  uint8_t op_in[kHeaderArea];   // the operation's own header (fuse_read_in, ...)
  EntryInOut ent;
};

struct CmdReq {  // in the second half of a 128-byte SQE
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(RequestHeaders) == 288);
static_assert(sizeof(CmdReq) == 24);
}  // namespace abi

namespace {
// The request header copied in front of its payload so that libfuse sees one
// contiguous request; page-sized so the payload stays page-aligned.
constexpr size_t kLead = 4096;
constexpr int kWaitMs = 200;      // how soon a blocking-call thread notices Stop
constexpr int kRegisterTries = 50;  // EAGAIN: the kernel had not finished INIT yet
constexpr int kRegisterRetryMs = 10;

std::string ReadParameter() {
  std::ifstream f("/sys/module/fuse/parameters/enable_uring");
  std::string v;
  f >> v;
  return v;
}

// Whether io_uring can carry FUSE here: the module parameter is on, and a
// ring with 128-byte SQEs that can wait with a timeout (EXT_ARG) can be made.
Status Probe() {
  std::string p = ReadParameter();
  if (p.empty()) return Error(proto::UNAVAILABLE, "this kernel has no FUSE over io_uring (no fuse.enable_uring)");
  if (p != "Y")
    return Error(proto::UNAVAILABLE, "FUSE over io_uring is off: write Y to /sys/module/fuse/parameters/enable_uring");
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;
  int rc = io_uring_queue_init_params(2, &ring, &params);
  if (rc < 0) return Error(proto::UNAVAILABLE, std::string("io_uring with 128-byte SQEs: ") + strerror(-rc));
  bool ext_arg = params.features & IORING_FEAT_EXT_ARG;
  io_uring_queue_exit(&ring);
  if (!ext_arg) return Error(proto::UNAVAILABLE, "io_uring lacks IORING_FEAT_EXT_ARG");
  return Status::OK();
}

// The kernel makes one queue per *possible* CPU (hot-pluggable ones too) and
// switches to the rings only once every queue has an entry; it fills them by
// the CPU a caller runs on. /sys/devices/system/cpu/possible: "0-3,6".
uint32_t CpuQueues() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string list;
  uint32_t highest = 0;
  bool any = false;
  if (f >> list) {
    size_t pos = 0;
    while (pos < list.size()) {
      size_t end = list.find(',', pos);
      if (end == std::string::npos) end = list.size();
      std::string range = list.substr(pos, end - pos);
      size_t dash = range.find('-');
      const char* last = range.c_str() + (dash == std::string::npos ? 0 : dash + 1);
      char* stop = nullptr;
      unsigned long id = strtoul(last, &stop, 10);
      if (stop != last) {
        highest = std::max(highest, static_cast<uint32_t>(id));
        any = true;
      }
      pos = end + 1;
    }
  }
  if (!any) return static_cast<uint32_t>(std::max(1, get_nprocs_conf()));
  return highest + 1;
}

void PrepCmd(io_uring_sqe* sqe, int fd, uint32_t op, FuseUring::Entry* e, uint16_t qid, uint64_t commit_id, void* data);
}  // namespace

struct FuseUring::Entry {
  Ring* ring = nullptr;  // its queue's ring (on an event loop), which registered it
  // Its completions on that loop. The kernel holds the entry until its next
  // request or the ring's exit, so the loop does not wait for it at Stop.
  struct Op : loop::LoopOp {
    Entry* entry = nullptr;
  } op;
  bool registering = false;  // loop thread only: the registration is not settled
  int register_tries = 0;
  abi::RequestHeaders headers{};
  iovec iov[2]{};
  uint8_t* region = nullptr;  // kLead + payload_size bytes, mmap'd
  uint8_t* payload = nullptr;
  size_t payload_size = 0;
  std::atomic<uint64_t> unique{0};  // the request being handled here; 0: none
};

// A share of one CPU queue's entries, served on one of the Client's event
// loops (whose ring has 128-byte SQEs), or a blocking-call thread's own
// io_uring. The kernel takes the commit of an entry from any ring and then
// delivers the entry's next request to the ring that committed it: an entry
// a blocking-call thread answered is committed on that thread's ring and its
// next request served there, with no hop through the loop.
struct FuseUring::Ring {
  FuseUring* owner = nullptr;
  uint16_t qid = 0;
  bool blocking = false;  // a blocking-call thread's: registers no entries
  std::vector<std::unique_ptr<Entry>> entries;

  // Queue rings: the loop that alone touches them (SINGLE_ISSUER,
  // DEFER_TASKRUN: the kernel's work of filling an entry with its next
  // request runs when that loop waits). Replies from other threads are
  // posted to it.
  loop::EventLoop* loop = nullptr;
  // Loop thread only: registrations refused for good, and those waiting for
  // another try (the kernel had not finished FUSE_INIT).
  Status register_error;
  int register_retries = 0;
  int live = 0;  // entries registered and not refused

  // Blocking rings: the thread and its own ring.
  std::thread thread;
  int wake_fd = -1;  // eventfd, written when a call is handed to an idle thread
  io_uring uring{};
  bool uring_ready = false;
  uint64_t wake_value = 0;
  // The one entry committed here, waiting for its next request (a thread
  // that may block serves at most one entry's requests).
  Entry* parked = nullptr;

  ~Ring() {
    if (uring_ready) io_uring_queue_exit(&uring);
    if (wake_fd >= 0) close(wake_fd);
    for (auto& e : entries)
      if (e->region) munmap(e->region, kLead + e->payload_size);
  }
  void RunBlocking();
  // Queue rings, on their loop: registers `batch` with the kernel; the
  // outcome settles in the entries' completions.
  void Register(const std::vector<Entry*>& batch);
  // Queue rings, on their loop: a completion of entry `e`.
  void OnCompletion(Entry* e, int res);
  // Queue rings, on their loop: resolves `done` once no registration waits
  // for another try, or with the first refusal.
  void SettleRegistration(std::shared_ptr<std::promise<Status>> done, int checks);
  Status OpenBlocking();
  // Checks a request the kernel put in `e` and lays it out for libfuse;
  // false when it needs no handler (a failed entry, a malformed request).
  bool Parse(Entry* e, int res, fuse_buf* buf, uint32_t* opcode);
  void Serve(Entry* e, fuse_buf buf);  // runs the handler on this thread
  // Commits `e` on this thread's ring (a blocking ring only for the entry
  // it is serving, and only while it parks no other), else hands it over.
  void CommitHere(Entry* e, uint64_t unique);
  void Unpark();  // the parked entry came back with a request
  struct Done {
    Entry* e;  // nullptr: the wake-up read
    int res;
  };
  // Submits what is queued, waits up to kWaitMs for completions and takes up
  // to `max` of them. A transient shortage (EAGAIN, EBUSY, ENOMEM) is waited
  // out on the ring; any other error ends the process.
  unsigned Reap(Done* done, unsigned max);
  void ArmWake();
  // Hands `e`'s commit to this queue ring's loop (from another thread).
  void Hand(Entry* e, uint64_t unique);
  void PrepCommit(Entry* e, uint64_t unique);
  io_uring_sqe* Sqe();
};

namespace {
thread_local FuseUring::Ring* tls_ring = nullptr;      // the blocking ring this thread serves
thread_local FuseUring::Entry* tls_entry = nullptr;    // the request it is handling

void PrepCmd(io_uring_sqe* sqe, int fd, uint32_t op, FuseUring::Entry* e, uint16_t qid, uint64_t commit_id,
             void* data) {
  // A blocking ring has a slot for its entry and its wake-up, and a loop's
  // Sqe() submits to make room: no free slot is a bug, not a load to wait out.
  if (sqe == nullptr) {
    LOG_ERROR("FUSE ring: no free submission slot");
    std::abort();
  }
  // A 128-byte SQE: the command's area runs on into the next 64-byte slot.
  std::memset(static_cast<void*>(sqe), 0, 2 * sizeof(io_uring_sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  if (op == abi::kCmdRegister) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  abi::CmdReq req{};
  req.commit_id = commit_id;
  req.qid = qid;
  std::memcpy(sqe->cmd, &req, sizeof(req));
  io_uring_sqe_set_data(sqe, data);
}
}  // namespace

Status FuseUring::Check(const UringOptions& options) {
  if (options.mode != "off" && options.mode != "auto" && options.mode != "on")
    return Error(proto::INVALID_ARGUMENT, "--uring must be off, auto or on");
  if (options.threads_per_queue == 0 || options.threads_per_queue > 64 ||
      options.entries_per_queue < options.threads_per_queue || options.entries_per_queue > 4096)
    return Error(proto::INVALID_ARGUMENT,
                 "--uring-threads-per-queue must be 1 to 64 and --uring-entries-per-queue at least that, at most 4096");
  if (options.blocking_threads == 0 || options.blocking_threads > 1024)
    return Error(proto::INVALID_ARGUMENT, "the FUSE thread count for blocking calls (--max-threads) must be 1 to 1024");
  if (options.mode == "on") return Probe();
  return Status::OK();
}

Result<std::unique_ptr<FuseUring>> FuseUring::Attach(fuse_session* se, const UringOptions& options) {
  RETURN_IF_ERROR(Check(options));
  if (options.mode == "off") return std::unique_ptr<FuseUring>();
  Status can = Probe();
  if (!can.ok()) {
    if (options.mode == "on") return can;
    LOG_INFO("FUSE over io_uring not used: {}", can.message());
    return std::unique_ptr<FuseUring>();
  }
  std::unique_ptr<FuseUring> u(new FuseUring(se, options));
  fuse_custom_io io{};
  io.read = &FuseUring::ReadHook;
  io.writev = &FuseUring::WritevHook;
  int rc = fuse_session_custom_io(se, &io, u->fuse_fd_);
  if (rc != 0) return Error(proto::INTERNAL, "fuse_session_custom_io: " + std::string(strerror(-rc)));
  return u;
}

FuseUring::FuseUring(fuse_session* se, const UringOptions& options)
    : se_(se), options_(options), fuse_fd_(fuse_session_fd(se)) {}

FuseUring::~FuseUring() { Stop(); }

void FuseUring::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  // A handler running on a loop finishes; later completions there run none.
  std::vector<loop::EventLoop*> loops;
  for (auto& r : rings_)
    if (std::find(loops.begin(), loops.end(), r->loop) == loops.end()) loops.push_back(r->loop);
  for (loop::EventLoop* l : loops) {
    std::promise<void> passed;
    l->Post([&passed] { passed.set_value(); });
    passed.get_future().wait();
  }
  // A blocking-call thread finishes the call it is in; requests still
  // queued are dropped (the mount is gone).
  for (auto& r : blocking_rings_) {
    if (!r->thread.joinable()) continue;
    uint64_t one = 1;
    ssize_t w = ::write(r->wake_fd, &one, sizeof(one));
    (void)w;
    r->thread.join();
  }
  active_.store(false, std::memory_order_release);
}

ssize_t FuseUring::ReadHook(int fd, void* buf, size_t len, void* userdata) {
  return static_cast<FuseContext*>(userdata)->uring->OnRead(fd, buf, len);
}

ssize_t FuseUring::WritevHook(int fd, struct iovec* iov, int count, void* userdata) {
  return static_cast<FuseContext*>(userdata)->uring->OnWritev(fd, iov, count);
}

ssize_t FuseUring::OnRead(int fd, void* buf, size_t len) {
  ssize_t n = ::read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header)) && !started_.load(std::memory_order_acquire)) {
    fuse_in_header in;
    std::memcpy(&in, buf, sizeof(in));
    if (in.opcode == FUSE_INIT && static_cast<size_t>(n) >= sizeof(in) + offsetof(fuse_init_in, flags2) + 4) {
      fuse_init_in init;
      std::memset(&init, 0, sizeof(init));
      std::memcpy(&init, static_cast<uint8_t*>(buf) + sizeof(in),
                  std::min(sizeof(init), static_cast<size_t>(n) - sizeof(in)));
      kernel_offers_ = (init.flags & FUSE_INIT_EXT) && (init.flags2 & abi::kOverIoUringFlags2);
      init_unique_.store(in.unique, std::memory_order_release);
    }
  }
  return n;
}

FuseUring::Entry* FuseUring::FindEntry(uint64_t unique, const struct iovec* iov, int count) const {
  auto is = [unique](const Entry* e) { return e && e->unique.load(std::memory_order_acquire) == unique; };
  if (is(tls_entry)) return tls_entry;
  if (count > 1) {  // a read's data, most likely built in its entry's buffer
    auto it = by_payload_.find(iov[1].iov_base);
    if (it != by_payload_.end() && is(it->second)) return it->second;
  }
  // Errors, empty reads and replies built elsewhere (rare on the read path).
  for (Entry* e : entries_)
    if (e->unique.load(std::memory_order_acquire) == unique) return e;
  return nullptr;
}

ssize_t FuseUring::OnWritev(int fd, struct iovec* iov, int count) {
  if (count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  if (out.unique != 0 && out.unique == init_unique_.load(std::memory_order_acquire) &&
      !started_.load(std::memory_order_acquire))
    return ReplyToInit(fd, iov, count);
  Entry* e = (out.unique != 0 && routing_.load(std::memory_order_acquire)) ? FindEntry(out.unique, iov, count) : nullptr;
  if (!e) return ::writev(fd, iov, count);

  size_t total = 0;
  for (int i = 1; i < count; ++i) total += iov[i].iov_len;
  ssize_t written = static_cast<ssize_t>(sizeof(out) + total);
  if (total > e->payload_size) {  // cannot happen within the limits INIT set; never overrun
    LOG_ERROR("FUSE reply of {} bytes exceeds the ring entry's {}", total, e->payload_size);
    out.error = -EIO;
    total = 0;
  } else {
    uint8_t* dst = e->payload;
    for (int i = 1; i < count; ++i) {
      // A reply built in ReplyBuffer is already in place.
      if (iov[i].iov_base != dst) std::memmove(dst, iov[i].iov_base, iov[i].iov_len);
      dst += iov[i].iov_len;
    }
  }
  out.len = static_cast<uint32_t>(sizeof(out) + total);
  std::memcpy(e->headers.in_out, &out, sizeof(out));
  e->headers.ent.payload_sz = static_cast<uint32_t>(total);
  e->unique.store(0, std::memory_order_release);
  CommitReply(e, out.unique);
  return written;
}

ssize_t FuseUring::ReplyToInit(int fd, struct iovec* iov, int count) {
  started_.store(true, std::memory_order_release);
  if (!kernel_offers_ || count < 2 || iov[1].iov_len < offsetof(fuse_init_out, flags2) + 4) {
    ssize_t n = ::writev(fd, iov, count);
    if (options_.mode == "on") FailRequired("the kernel did not offer it in FUSE_INIT");
    else LOG_INFO("the kernel did not offer FUSE over io_uring in FUSE_INIT");
    return n;
  }
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof(out));
  if (out.error != 0) return ::writev(fd, iov, count);
  fuse_init_out init;
  std::memset(&init, 0, sizeof(init));
  size_t init_len = std::min(sizeof(init), iov[1].iov_len);
  std::memcpy(&init, iov[1].iov_base, init_len);
  init.flags |= FUSE_INIT_EXT;
  init.flags2 |= abi::kOverIoUringFlags2;
  // The payload buffer must hold the largest request and reply the kernel
  // may send (its own formula, in fs/fuse/dev_uring.c).
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t max_pages = (init.flags & FUSE_MAX_PAGES) ? init.max_pages : 32;
  size_t payload_size = std::max({abi::kMinPayload, static_cast<size_t>(init.max_write), max_pages * page});

  std::vector<iovec> patched(iov, iov + count);
  patched[1].iov_base = &init;
  patched[1].iov_len = init_len;
  ssize_t n = ::writev(fd, patched.data(), count);
  if (n < 0) return n;
  Status st = Start(payload_size);
  if (!st.ok()) {
    LOG_ERROR("FUSE over io_uring could not start ({}): asking the kernel to fall back to /dev/fuse", st.ToString());
    RefuseRings();
    if (options_.mode == "on") FailRequired(st.ToString());
  }
  return n;
}

Status FuseUring::Start(size_t payload_size) {
  if (options_.loops.empty()) return Error(proto::INTERNAL, "no event loops to serve the FUSE rings");
  uint32_t queues = CpuQueues();
  uint32_t per_ring = std::max(1u, options_.entries_per_queue / options_.threads_per_queue);
  for (uint32_t q = 0; q < queues; ++q) {
    for (uint32_t t = 0; t < options_.threads_per_queue; ++t) {
      auto r = std::make_unique<Ring>();
      r->owner = this;
      r->qid = static_cast<uint16_t>(q);
      r->loop = options_.loops[(q * options_.threads_per_queue + t) % options_.loops.size()];
      for (uint32_t i = 0; i < per_ring; ++i) {
        auto e = std::make_unique<Entry>();
        e->ring = r.get();
        e->op.entry = e.get();
        e->op.awaited = false;
        e->op.done = [](loop::LoopOp* op, int32_t res) {
          Entry* e = static_cast<Entry::Op*>(op)->entry;
          e->ring->OnCompletion(e, res);
        };
        e->payload_size = payload_size;
        void* m = mmap(nullptr, kLead + payload_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return Error(proto::UNAVAILABLE, "cannot map a FUSE ring buffer");
        e->region = static_cast<uint8_t*>(m);
        e->payload = e->region + kLead;
        e->iov[0] = {&e->headers, sizeof(e->headers)};
        e->iov[1] = {e->payload, payload_size};
        entries_.push_back(e.get());
        by_payload_.emplace(e->payload, e.get());
        r->entries.push_back(std::move(e));
      }
      rings_.push_back(std::move(r));
    }
  }
  for (uint32_t i = 0; i < options_.blocking_threads; ++i) {
    auto r = std::make_unique<Ring>();
    r->owner = this;
    r->blocking = true;
    r->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (r->wake_fd < 0) return Error(proto::UNAVAILABLE, std::string("eventfd: ") + strerror(errno));
    blocking_rings_.push_back(std::move(r));
  }
  {
    std::vector<std::promise<Status>> opened(blocking_rings_.size());
    for (size_t i = 0; i < blocking_rings_.size(); ++i) {
      Ring* ring = blocking_rings_[i].get();
      std::promise<Status>* p = &opened[i];
      try {
        ring->thread = std::thread([ring, p] {
          Status st = ring->OpenBlocking();
          bool ok = st.ok();
          p->set_value(std::move(st));
          if (ok) ring->RunBlocking();
        });
      } catch (const std::system_error& e) {
        opened[i].set_value(Error(proto::UNAVAILABLE, std::string("cannot start a FUSE blocking-call thread: ") + e.what()));
      }
    }
    Status first_error;  // every thread reports before `opened` goes
    for (auto& p : opened) {
      Status st = p.get_future().get();
      if (!st.ok() && first_error.ok()) first_error = st;
    }
    RETURN_IF_ERROR(first_error);
  }
  // Replies find their entries from here on (a ring request may come as soon
  // as every queue has an entry, before the last ring settles).
  routing_.store(true, std::memory_order_release);
  // Each loop registers its rings' entries (it is their ring's single
  // issuer); the kernel switches over once every queue has one.
  std::vector<std::future<Status>> settled;
  for (auto& r : rings_) {
    auto done = std::make_shared<std::promise<Status>>();
    settled.push_back(done->get_future());
    Ring* ring = r.get();
    ring->loop->Post([ring, done] {
      std::vector<Entry*> batch;
      for (auto& e : ring->entries) batch.push_back(e.get());
      ring->Register(batch);
      // Runs after this iteration submitted them and took the refusals.
      ring->loop->Post([ring, done] { ring->SettleRegistration(done, 0); });
    });
  }
  Status first_error;
  for (auto& f : settled) {
    Status st = f.get();
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  // On an error the rings that did register keep serving: if every queue got
  // entries anyway the kernel uses them; if not, the caller's refusal sends
  // it back to /dev/fuse.
  if (!first_error.ok()) return first_error;
  active_.store(true, std::memory_order_release);
  LOG_INFO("FUSE over io_uring: {} queues x {} rings x {} entries of {} KiB on {} event loops; {} threads for blocking "
           "calls",
           queues, options_.threads_per_queue, per_ring, payload_size / 1024, options_.loops.size(),
           options_.blocking_threads);
  return Status::OK();
}

void FuseUring::Ring::Register(const std::vector<Entry*>& batch) {
  for (Entry* e : batch) {
    e->registering = true;
    ++e->register_tries;
    ++live;
    PrepCmd(Sqe(), owner->fuse_fd_, abi::kCmdRegister, e, qid, 0, &e->op);
  }
}

void FuseUring::Ring::SettleRegistration(std::shared_ptr<std::promise<Status>> done, int checks) {
  if (!register_error.ok() || register_retries == 0) return done->set_value(register_error);
  if (checks >= kRegisterTries) return done->set_value(Error(proto::UNAVAILABLE, "the kernel was not ready for FUSE ring entries"));
  loop->After(kRegisterRetryMs, [this, done, checks] { SettleRegistration(done, checks + 1); });
}

void FuseUring::Ring::OnCompletion(Entry* e, int res) {
  if (e->registering) {
    e->registering = false;
    // A registration the kernel takes completes only when a request comes; a
    // refusal completes at once.
    if (res == -EAGAIN && e->register_tries < kRegisterTries) {  // the kernel had not finished FUSE_INIT
      --live;
      ++register_retries;
      loop->After(kRegisterRetryMs, [this, e] {
        Register({e});
        // Counted out only after the iteration that submits it has taken a
        // refusal, if the kernel sends one.
        loop->Post([this] { --register_retries; });
      });
      return;
    }
    if (res < 0) {
      --live;
      if (register_error.ok())
        register_error = Error(proto::UNAVAILABLE, std::string("the kernel refused a FUSE ring entry: ") + strerror(-res));
      return;
    }
  }
  // After Stop no handler runs; the entry stays with the kernel until the
  // mount or the ring goes.
  if (owner->stopping_.load(std::memory_order_acquire)) return;
  uint32_t opcode;
  fuse_buf buf;
  if (!Parse(e, res, &buf, &opcode)) return;
  // READ and WRITE only start their I/O; anything else may wait on meta.
  if (opcode != FUSE_READ && opcode != FUSE_WRITE) return owner->HandOff(e, buf);
  Serve(e, buf);
}

void FuseUring::RefuseRings() {
  // A registration for a queue that cannot exist makes the kernel clear the
  // connection's io_uring flag and wake the requests waiting for the rings.
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;
  if (io_uring_queue_init_params(2, &ring, &params) < 0) {
    LOG_ERROR("cannot make the kernel give up on FUSE over io_uring; the mount will hang");
    return;
  }
  Entry bogus;
  bogus.iov[0] = {&bogus.headers, sizeof(bogus.headers)};
  bogus.iov[1] = {nullptr, 0};
  PrepCmd(io_uring_get_sqe(&ring), fuse_fd_, abi::kCmdRegister, &bogus, 0xffff, 0, &bogus);
  io_uring_cqe* cqe = nullptr;
  int rc = io_uring_submit_and_wait(&ring, 1);
  if (rc >= 0) rc = io_uring_peek_cqe(&ring, &cqe);
  if (rc < 0 || cqe == nullptr) LOG_ERROR("cannot make the kernel give up on FUSE over io_uring: {}", strerror(-rc));
  else if (cqe->res != -EINVAL) LOG_ERROR("the kernel did not refuse the bogus FUSE ring entry: {}", cqe->res);
  io_uring_queue_exit(&ring);
}

void FuseUring::FailRequired(const std::string& why) {
  LOG_ERROR("uring = on, but FUSE over io_uring cannot serve this mount ({}): detaching {}", why, options_.mountpoint);
  failed_.store(true, std::memory_order_release);
  // The session loop ends when the kernel ends the connection, which an
  // unused detached mount does at once.
  if (!options_.mountpoint.empty() && umount2(options_.mountpoint.c_str(), MNT_DETACH) != 0)
    LOG_ERROR("cannot detach {}: {}", options_.mountpoint, strerror(errno));
}

io_uring_sqe* FuseUring::Ring::Sqe() {
  if (loop) return loop->UnawaitedSqe();
  io_uring_sqe* sqe = io_uring_get_sqe(&uring);
  if (!sqe) {  // sized for every entry plus the wake-up; flush and retry anyway
    io_uring_submit(&uring);
    sqe = io_uring_get_sqe(&uring);
  }
  return sqe;
}

Status FuseUring::Ring::OpenBlocking() {
  tls_ring = this;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(8, &uring, &params);
  if (rc < 0) return Error(proto::UNAVAILABLE, std::string("io_uring_queue_init: ") + strerror(-rc));
  uring_ready = true;
  ArmWake();
  return Status::OK();
}

unsigned FuseUring::Ring::Reap(Done* done, unsigned max) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{0, kWaitMs * 1000000LL};
  int rc = io_uring_submit_and_wait_timeout(&uring, &cqe, 1, &ts, nullptr);
  if (rc == -EAGAIN || rc == -EBUSY || rc == -ENOMEM) {
    // Short of memory or of completion space: let completions drain without
    // submitting, for at most a millisecond on the ring's own clock.
    __kernel_timespec brief{0, 1000000LL};
    rc = io_uring_wait_cqe_timeout(&uring, &cqe, &brief);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ENOMEM) {
    // Its entries would hold their requests forever; an exit makes the
    // kernel fail them instead.
    LOG_ERROR("FUSE {} ring {}: waiting for requests: {}; ending the process", blocking ? "blocking-call" : "queue",
              qid, strerror(-rc));
    std::abort();
  }
  unsigned n = 0, head;
  io_uring_for_each_cqe(&uring, head, cqe) {
    if (n == max) break;
    done[n++] = {static_cast<Entry*>(io_uring_cqe_get_data(cqe)), cqe->res};
  }
  io_uring_cq_advance(&uring, n);
  return n;
}

void FuseUring::Ring::ArmWake() {
  io_uring_sqe* sqe = Sqe();
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));
  io_uring_prep_read(sqe, wake_fd, &wake_value, sizeof(wake_value), 0);
  io_uring_sqe_set_data(sqe, nullptr);
}

bool FuseUring::Ring::Parse(Entry* e, int res, fuse_buf* buf, uint32_t* opcode) {
  if (res < 0) {
    // ENOTCONN/ECANCELED, or anything once the session is ending: the mount
    // went away; anything else is a refusal.
    if (res != -ENOTCONN && res != -ECANCELED && !fuse_session_exited(owner->se_))
      LOG_ERROR("FUSE ring {}: the kernel failed an entry: {}", e->ring->qid, strerror(-res));
    if (!blocking) --live;
    return false;
  }
  fuse_in_header in;
  std::memcpy(&in, e->headers.in_out, sizeof(in));
  uint32_t payload = e->headers.ent.payload_sz;
  size_t fixed = sizeof(in) + payload;
  if (in.len < fixed || in.len - fixed > abi::kHeaderArea || payload > e->payload_size) {
    LOG_ERROR("FUSE ring {}: malformed request (len {}, payload {}), answered EIO", e->ring->qid, in.len, payload);
    fuse_out_header out{sizeof(fuse_out_header), -EIO, in.unique};
    std::memcpy(e->headers.in_out, &out, sizeof(out));
    e->headers.ent.payload_sz = 0;
    CommitHere(e, in.unique);
    return false;
  }
  size_t op_in = in.len - fixed;
  uint8_t* start = e->payload - sizeof(in) - op_in;
  std::memcpy(start, &in, sizeof(in));
  std::memcpy(start + sizeof(in), e->headers.op_in, op_in);
  e->unique.store(in.unique, std::memory_order_release);
  owner->requests_.fetch_add(1, std::memory_order_relaxed);
  *buf = fuse_buf{};
  buf->size = in.len;
  buf->mem = start;
  *opcode = in.opcode;
  return true;
}

void FuseUring::Ring::Serve(Entry* e, fuse_buf buf) {
  // The entry (and so `buf`) stays ours until this request's reply.
  tls_entry = e;
  fuse_session_process_buf(owner->se_, &buf);
  tls_entry = nullptr;
}

void FuseUring::HandOff(Entry* e, fuse_buf buf) {
  Ring* wake = nullptr;
  {
    std::lock_guard<std::mutex> l(blocking_mu_);
    blocking_.emplace_back(e, buf);
    // An idle thread takes it. When none is, a busy one that parks no
    // entry does as soon as its call returns: it looks before it waits.
    if (!idle_.empty()) {
      wake = idle_.back();
      idle_.pop_back();
    }
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t w = ::write(wake->wake_fd, &one, sizeof(one));
    (void)w;
  }
}

bool FuseUring::TakeHandOff(Ring* r, Entry** e, fuse_buf* buf) {
  std::lock_guard<std::mutex> l(blocking_mu_);
  auto idle = std::find(idle_.begin(), idle_.end(), r);
  if (blocking_.empty()) {
    if (idle == idle_.end()) idle_.push_back(r);
    return false;
  }
  if (idle != idle_.end()) idle_.erase(idle);
  std::tie(*e, *buf) = blocking_.front();
  blocking_.pop_front();
  return true;
}

void FuseUring::Ring::RunBlocking() {
  while (!owner->stopping_.load(std::memory_order_acquire)) {
    // A reply committed here goes to the kernel now, before this thread
    // takes a call that may block.
    if (io_uring_sq_ready(&uring) > 0) io_uring_submit(&uring);
    Entry* e;
    fuse_buf buf;
    // A thread that parks an entry takes no hand-off: a call that blocked
    // here would hold up the request the kernel may put in that entry.
    if (!parked && owner->TakeHandOff(this, &e, &buf)) {
      Serve(e, buf);
      continue;
    }
    // Waits for the parked entry's next request or for a hand-off.
    Done done[8];
    unsigned n = Reap(done, 8);
    for (unsigned i = 0; i < n; ++i) {
      if (done[i].e == nullptr) {
        ArmWake();
        continue;
      }
      if (done[i].e == parked) Unpark();
      uint32_t opcode;
      if (Parse(done[i].e, done[i].res, &buf, &opcode)) {
        owner->requests_here_.fetch_add(1, std::memory_order_relaxed);
        Serve(done[i].e, buf);  // whatever it is: this thread may block
      }
    }
  }
  tls_ring = nullptr;
}

void FuseUring::Ring::PrepCommit(Entry* e, uint64_t unique) {
  // The entry's queue, whichever ring commits it; its next request comes
  // back to this ring.
  PrepCmd(Sqe(), owner->fuse_fd_, abi::kCmdCommitAndFetch, e, e->ring->qid, unique,
          loop ? static_cast<void*>(&e->op) : static_cast<void*>(e));
}

void FuseUring::Ring::CommitHere(Entry* e, uint64_t unique) {
  if (!blocking) return PrepCommit(e, unique);  // submitted with the loop's next wait
  if (parked == nullptr && owner->MayPark()) {
    parked = e;
    return PrepCommit(e, unique);  // submitted before this thread does anything else
  }
  e->ring->Hand(e, unique);
}

void FuseUring::Ring::Unpark() {
  parked = nullptr;
  std::lock_guard<std::mutex> l(owner->blocking_mu_);
  --owner->parked_count_;
}

bool FuseUring::MayPark() {
  // Parked threads take no hand-offs: a few threads always stay free for them.
  std::lock_guard<std::mutex> l(blocking_mu_);
  size_t n = blocking_rings_.size();
  size_t free_at_least = std::max<size_t>(1, std::min<size_t>(4, n / 2));
  if (parked_count_ + free_at_least >= n) return false;
  ++parked_count_;
  return true;
}

void FuseUring::CommitReply(Entry* e, uint64_t unique) {
  Ring* own = tls_ring;
  // A blocking-call thread commits only the request it is serving (its ring
  // is sized for one entry); a reply on the entry's loop (a read completing
  // there) is committed at once; any other goes to that loop.
  if (own && own->owner == this && own->blocking && tls_entry == e) return own->CommitHere(e, unique);
  Ring* queue = e->ring;
  if (queue->loop->InLoopThread()) return queue->PrepCommit(e, unique);
  queue->Hand(e, unique);
}

void FuseUring::Ring::Hand(Entry* e, uint64_t unique) {
  // A stopped loop runs what is posted on the stopping thread, where the
  // commit is dropped: the mount is gone by then.
  loop->Post([this, e, unique] {
    if (loop->InLoopThread()) PrepCommit(e, unique);
  });
}

uint8_t* FuseUring::ReplyBuffer(size_t size) {
  Entry* e = tls_entry;
  if (!e || size > e->payload_size) return nullptr;
  return e->payload;
}

}  // namespace shoal::fuse
