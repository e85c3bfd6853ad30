// BatchReader: keeps up to N reads in flight through one Client, submitted
// and reaped like a ring (in the spirit of io_uring / 3FS's USRBIO), but
// in-process: Submit starts reads, Reap collects the finished ones.
//
//   BatchReader r(client, 64);
//   Attr file = *client->Resolve(ProcessCaller(), "/data.bin");   // once per file
//   r.Submit({&file, offset, length, buf, tag});
//   BatchReader::Completion done[64];
//   size_t n = r.Reap(done, 64, 1, 1000);   // done[i].user_data == tag ...
//
// Items name their file by Attr (from Client::Resolve, Lookup, GetAttr or a
// readdir-plus entry), so a read costs no attr lookup; the Attr must be valid
// only while Submit runs (the client copies what it needs). Reads are clamped
// to the Attr's size: an item past the end completes OK with bytes < length,
// like pread. Each item completes alone, with its own status: a missing chunk,
// a failed server or a bad Attr fails that item and no other.
//
// The caller's buffer must stay valid and untouched until the item is reaped.
// An item counts as in flight from Submit until Reap hands out its completion,
// so in_flight() never exceeds max_in_flight and completions never pile up
// beyond it.
//
// Thread-safety: one thread drives a BatchReader (Submit, Reap, in_flight and
// the destructor); the client's internal threads complete reads into it. Use
// one BatchReader per driving thread; many may share one Client.
// The Client must outlive the BatchReader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "client/client.h"
#include "common/status.h"

namespace shoal::client {

class BatchReader {
 public:
  struct Item {
    const Attr* file = nullptr;  // needed only during Submit
    uint64_t offset = 0;
    size_t length = 0;
    uint8_t* buf = nullptr;  // `length` writable bytes, valid until reaped
    uint64_t user_data = 0;  // handed back in the completion
  };
  struct Completion {
    uint64_t user_data = 0;
    Status status;
    size_t bytes = 0;  // bytes read when OK (< length at end of file)
  };

  // max_in_flight >= 1 (0 is taken as 1).
  BatchReader(Client* client, size_t max_in_flight);
  // Waits until every submitted read has completed (the client bounds each by
  // its timeouts and retry attempts); unreaped completions are dropped. No
  // callback refers to this object once it returns.
  ~BatchReader();
  BatchReader(const BatchReader&) = delete;
  BatchReader& operator=(const BatchReader&) = delete;

  // Starts one read. OUT_OF_RANGE when max_in_flight items are in flight
  // (reap some first), INVALID_ARGUMENT for a null file or buffer; then
  // nothing was started. Any other failure arrives as the item's completion.
  Status Submit(const Item& item);
  // Starts items in order until the ring is full or an item is refused;
  // returns how many were started (items[0..n)). They go out together: the
  // pieces of all of them are grouped per server into shared requests, so
  // many small reads cost a few RPCs (Client::ReadAsyncMany).
  size_t Submit(const Item* items, size_t count);

  // Waits up to timeout_ms (0: not at all, < 0: no limit) until at least
  // `min` completions are ready, then moves up to `max` into `out` and returns
  // how many. `min` is capped at in_flight(), so a wait for reads never
  // submitted cannot hang. Returns fewer than `min` (maybe 0) on timeout.
  size_t Reap(Completion* out, size_t max, size_t min, int timeout_ms);

  size_t in_flight() const;
  size_t max_in_flight() const { return capacity_; }

 private:
  struct Ring;  // shared with the callbacks, so it outlives a late one
  Status Check(const Item& item) const;
  IoCallback Track(uint64_t user_data);  // counts one more in flight; its completion callback
  Client* client_;
  size_t capacity_;
  size_t in_flight_ = 0;  // submitted, not yet reaped (the driving thread's count)
  std::shared_ptr<Ring> ring_;
};

}  // namespace shoal::client
