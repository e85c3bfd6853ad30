#include "client/batch_reader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace shoal::client {

// Finished reads waiting to be reaped, in completion order. Its capacity is
// the reader's cap, and an item holds its place from Submit to Reap, so a
// completion always finds room.
struct BatchReader::Ring {
  explicit Ring(size_t capacity) : slots(capacity) {}
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Completion> slots;  // guarded by mu
  size_t head = 0;                // guarded by mu: oldest ready completion
  size_t ready = 0;               // guarded by mu
  size_t outstanding = 0;         // guarded by mu: started, callback not yet run

  void Complete(uint64_t user_data, Result<size_t> r) {
    std::lock_guard<std::mutex> l(mu);
    Completion& c = slots[(head + ready) % slots.size()];
    c.user_data = user_data;
    c.bytes = r.ok() ? *r : 0;
    c.status = r.status();
    ++ready;
    --outstanding;
    cv.notify_all();
  }
};

BatchReader::BatchReader(Client* client, size_t max_in_flight)
    : client_(client), capacity_(std::max<size_t>(max_in_flight, 1)), ring_(std::make_shared<Ring>(capacity_)) {}

BatchReader::~BatchReader() {
  std::unique_lock<std::mutex> l(ring_->mu);
  ring_->cv.wait(l, [this] { return ring_->outstanding == 0; });
}

Status BatchReader::Check(const Item& item) const {
  if (in_flight_ >= capacity_) return Error(proto::OUT_OF_RANGE, "batch reader full: reap completions first");
  if (item.file == nullptr || item.buf == nullptr)
    return Error(proto::INVALID_ARGUMENT, "batch read item needs a file and a buffer");
  return Status::OK();
}

IoCallback BatchReader::Track(uint64_t user_data) {
  ++in_flight_;
  {
    std::lock_guard<std::mutex> l(ring_->mu);
    ++ring_->outstanding;
  }
  return [ring = ring_, user_data](Result<size_t> r) { ring->Complete(user_data, std::move(r)); };
}

Status BatchReader::Submit(const Item& item) {
  RETURN_IF_ERROR(Check(item));
  client_->ReadAsync(*item.file, item.offset, item.length, item.buf, Track(item.user_data));
  return Status::OK();
}

size_t BatchReader::Submit(const Item* items, size_t count) {
  std::vector<Client::AsyncRead> reads;
  reads.reserve(std::min(count, capacity_ - in_flight_));
  for (size_t n = 0; n < count && Check(items[n]).ok(); ++n)
    reads.push_back({items[n].file, items[n].offset, items[n].length, items[n].buf, Track(items[n].user_data)});
  size_t started = reads.size();
  if (started == 1) {
    const Item& it = items[0];
    client_->ReadAsync(*it.file, it.offset, it.length, it.buf, std::move(reads[0].done));
  } else if (started > 1) {
    client_->ReadAsyncMany(std::move(reads));
  }
  return started;
}

size_t BatchReader::Reap(Completion* out, size_t max, size_t min, int timeout_ms) {
  min = std::min(min, in_flight_);
  std::unique_lock<std::mutex> l(ring_->mu);
  auto enough = [&] { return ring_->ready >= min; };
  if (timeout_ms < 0) ring_->cv.wait(l, enough);
  else if (timeout_ms > 0) ring_->cv.wait_for(l, std::chrono::milliseconds(timeout_ms), enough);
  size_t n = std::min(max, ring_->ready);
  for (size_t i = 0; i < n; ++i) {
    out[i] = std::move(ring_->slots[ring_->head]);
    ring_->head = (ring_->head + 1) % ring_->slots.size();
  }
  ring_->ready -= n;
  in_flight_ -= n;
  return n;
}

size_t BatchReader::in_flight() const { return in_flight_; }

}  // namespace shoal::client
