// FUSE over io_uring beneath libfuse 3.14.
//
// With /sys/module/fuse/parameters/enable_uring = Y (Linux 6.14 and later) a
// FUSE server may take its requests from per-CPU queues of buffers it
// registered with the kernel, instead of read(2) on /dev/fuse, and hand back
// each reply together with the fetch of its next request in one io_uring
// command (no read(2) + writev(2) pair per request). The kernel puts a request
// on the queue of the CPU its caller runs on, so every CPU's queue must have
// buffers before the kernel switches over.
//
// libfuse 3.14 predates this, so FuseUring sits beneath it as the session's
// custom I/O (fuse_session_custom_io):
//  - it asks for the capability in the FUSE_INIT reply libfuse writes, when
//    the kernel offered it;
//  - the Client's event loops serve the rings (their io_urings take 128-byte
//    SQEs), feeding each ring request to fuse_session_process_buf, so the
//    same handlers run as for /dev/fuse requests;
//  - a reply to a ring request, from whichever thread sends it, is copied into
//    that request's ring entry and committed there; every other reply
//    (requests read from /dev/fuse, notifications) is written to /dev/fuse.
// FORGET and INTERRUPT keep coming through /dev/fuse (the kernel sends them
// there), so libfuse's own loop keeps running beside the rings.
//
// READ and WRITE run on the loop (they start their I/O and return; the reply
// comes from the I/O's completion, on the same loop when it owns the storage
// connection): a read then costs no hop between threads, and the loop's one
// io_uring_enter per iteration carries the FUSE commits and fetches, the
// socket I/O and the waiting. Every other request may wait on meta, so it
// runs on one of `blocking_threads`, and the loop goes on. A blocking thread
// has a ring of its own: it commits its reply there (the kernel takes a
// commit from any ring), and the entry's next request comes to it, so a run
// of metadata calls from one caller costs no hop between threads. Such a
// thread parks at most one entry and, while it does, takes no hand-off (a
// call blocking there would hold up the request the kernel may put in that
// entry); a few threads never park, so hand-offs always find one.
//
// A handler running on a loop may build its reply straight in the ring
// entry's payload buffer (ReplyBuffer), which the kernel copies from: a read
// then lands once in user space, not in a buffer and again in the entry.
//
// Failure: if the rings cannot be set up after the kernel agreed, FuseUring
// sends the kernel a registration it must refuse, which makes the kernel fall
// back to /dev/fuse for good (a kernel that agreed waits for registrations
// before it sends anything else); with mode on it then detaches the mount.
// A ring that fails later in a way no retry mends (io_uring_enter returning
// an error other than EINTR, EAGAIN, EBUSY or ENOMEM) ends the process: its
// entries would otherwise hold their requests forever, while an exit makes
// the kernel fail them (ENOTCONN).
//
// Lifetime and threads: Attach after fuse_session_mount and before the
// session loop; Stop after the loop returned and the mount was detached,
// while the loops run; then stop the loops (the Client reset), which sends
// the last replies; the object outlives the loops and the session's last
// reply. Replies may come from any thread.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace shoal::loop {
class EventLoop;
}

namespace shoal::fuse {

struct UringOptions {
  // off: /dev/fuse only. auto: io_uring when the kernel offers it. on: fail
  // the mount unless the kernel allows it (module parameter, ring support).
  std::string mode = "auto";
  // The loops that serve the queues' rings (their rings made with
  // wide_sqes); queue q's rings go to loops in turn.
  std::vector<loop::EventLoop*> loops;
  uint32_t threads_per_queue = 1;  // rings per queue, each on a loop
  uint32_t entries_per_queue = 64;  // requests one CPU's queue holds in flight
  // Threads that run every request but READ and WRITE (which only start
  // their I/O and return) so that a metadata call waiting on meta never
  // holds up the reads queued behind it on its CPU's ring.
  uint32_t blocking_threads = 16;
  // The mount's canonical path: with mode on, a mount that cannot use
  // io_uring after all (the kernel did not offer it in FUSE_INIT, or the
  // rings did not start) is detached, so the daemon exits with an error.
  std::string mountpoint;
};

class FuseUring {
 public:
  // Installs itself as `se`'s I/O. Returns nullptr for mode off, and for
  // mode auto when this kernel cannot; an error for mode on when it cannot.
  static Result<std::unique_ptr<FuseUring>> Attach(fuse_session* se, const UringOptions& options);
  // Attach's checks, for before the mount: bad options, or mode on where this
  // kernel cannot, are errors (with what to do about it).
  static Status Check(const UringOptions& options);
  ~FuseUring();

  // Stops taking requests from the rings: waits for handlers running on the
  // loops, then joins the blocking-call threads once the calls they are in
  // returned (calls handed off but not started are dropped: the mount is
  // detached by then). Call it after the session loop returned and the
  // mount was detached, while the loops still run, before the handlers'
  // state (the Client) goes: afterwards no handler runs from a ring. A reply
  // sent later (an I/O completing) is committed while its loop runs. The
  // entries stay with the kernel until the mount ends them or the loops'
  // rings close. Idempotent; after the first call it touches no loop.
  void Stop();
  // Whether mode on could not be honoured after the mount (see mountpoint).
  bool failed() const { return failed_.load(std::memory_order_acquire); }

  // Whether the kernel agreed and every queue got its entries.
  bool active() const { return active_.load(std::memory_order_acquire); }
  // Requests served through the rings so far.
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  // Of those, the ones that came straight to a blocking-call thread's ring
  // (the entry it had answered the call before on).
  uint64_t requests_on_blocking_rings() const { return requests_here_.load(std::memory_order_relaxed); }

  // For a handler running on a loop for a ring request, a buffer of at least `size` bytes
  // in which to build the reply to the request being handled, valid until
  // that reply is sent; nullptr elsewhere. Never to be freed by the caller.
  static uint8_t* ReplyBuffer(size_t size);

  FuseUring(const FuseUring&) = delete;
  FuseUring& operator=(const FuseUring&) = delete;

  struct Entry;
  struct Ring;

 private:
  FuseUring(fuse_session* se, const UringOptions& options);

  static ssize_t ReadHook(int fd, void* buf, size_t len, void* userdata);
  static ssize_t WritevHook(int fd, struct iovec* iov, int count, void* userdata);
  ssize_t OnRead(int fd, void* buf, size_t len);
  ssize_t OnWritev(int fd, struct iovec* iov, int count);
  ssize_t ReplyToInit(int fd, struct iovec* iov, int count);
  Status Start(size_t payload_size);
  void RefuseRings();  // makes the kernel give up on io_uring for this mount
  void FailRequired(const std::string& why);  // mode on: detach the mount
  // The entry of the request `unique`, whose reply is `iov`; nullptr when
  // that request did not come through a ring.
  Entry* FindEntry(uint64_t unique, const struct iovec* iov, int count) const;
  // Runs a ring request that may block on one of the blocking threads.
  void HandOff(Entry* e, fuse_buf buf);
  // For blocking ring `r`: the next request handed off, unless `r` parks an
  // entry while another thread is idle. Marks `r` idle when it gets none.
  bool TakeHandOff(Ring* r, Entry** e, fuse_buf* buf);
  // Sends the reply now in `e` to the kernel from the right ring.
  void CommitReply(Entry* e, uint64_t unique);
  // Whether one more blocking-call thread may park an entry (and count it).
  bool MayPark();

  friend struct Ring;
  fuse_session* se_;
  UringOptions options_;
  int fuse_fd_;
  std::atomic<uint64_t> init_unique_{0};
  bool kernel_offers_ = false;   // written by the read of FUSE_INIT, read by its reply
  std::vector<std::unique_ptr<Ring>> rings_;
  std::vector<Entry*> entries_;  // every ring's, fixed once the rings start
  // Entries by payload buffer: a read answered from ReplyBuffer names its
  // entry with its reply's data, found without a scan (fixed with entries_).
  std::unordered_map<const void*, Entry*> by_payload_;
  std::atomic<bool> started_{false};
  std::atomic<bool> routing_{false};  // entries_ is complete: replies may be routed to it
  std::atomic<bool> active_{false};
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;  // Stop ran
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> requests_here_{0};

  std::vector<std::unique_ptr<Ring>> blocking_rings_;  // fixed once the rings start
  std::mutex blocking_mu_;
  std::deque<std::pair<Entry*, fuse_buf>> blocking_;  // guarded by blocking_mu_
  std::vector<Ring*> idle_;                           // guarded by blocking_mu_
  size_t parked_count_ = 0;                           // guarded by blocking_mu_
};

}  // namespace shoal::fuse
