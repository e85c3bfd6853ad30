// Kv::Write, group commit and the deferred-sync scope (see kv.h).
#include "meta/kv.h"

#include <algorithm>

namespace shoal::meta {

namespace {
// The scope open on this thread, if any.
thread_local DeferredSync* t_scope = nullptr;
}  // namespace

uint64_t GroupCommitter::synced() const {
  std::lock_guard<std::mutex> l(mu_);
  return synced_;
}

uint64_t GroupCommitter::sync_rounds() const {
  std::lock_guard<std::mutex> l(mu_);
  return rounds_;
}

Status GroupCommitter::SyncThrough(uint64_t seq) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (synced_ >= seq) return Status::OK();
    if (failed_through_ >= seq) return failure_;
    if (!syncing_) break;
    // A round is running; it covers us if it started after our apply,
    // otherwise the next round (led by one of us) will.
    cv_.wait(l);
  }
  // Lead a round for everything applied so far: any batch numbered <= target
  // finished its apply before we read applied_ (the number is taken after the
  // apply returns), so the sync below covers it.
  syncing_ = true;
  uint64_t target = applied_.load(std::memory_order_acquire);
  ++rounds_;
  l.unlock();
  Status st = sync_();
  l.lock();
  syncing_ = false;
  if (st.ok()) {
    synced_ = std::max(synced_, target);
  } else {
    failed_through_ = std::max(failed_through_, target);
    failure_ = st;
  }
  cv_.notify_all();
  return st;
}

Status Kv::Write(const KvBatch& batch) {
  ASSIGN_OR_RETURN(uint64_t seq, Apply(batch));
  if (DeferredSync::Defer(this, seq)) return Status::OK();
  return SyncThrough(seq);
}

DeferredSync::DeferredSync(Kv* kv) : kv_(kv) {
  if (t_scope == nullptr) {
    t_scope = this;
    active_ = true;
  }
}

DeferredSync::~DeferredSync() {
  if (active_) t_scope = nullptr;
}

bool DeferredSync::Defer(Kv* kv, uint64_t seq) {
  DeferredSync* s = t_scope;
  if (s == nullptr || s->kv_ != kv) return false;  // another Kv's writes are synced at once
  s->wrote_ = true;
  s->max_seq_ = std::max(s->max_seq_, seq);
  return true;
}

Status DeferredSync::Wait() {
  // Only what this thread wrote is waited for. A request that wrote nothing
  // answers at once, even when what it read is another request's batch that
  // is applied but not yet durable (that request is not answered before it
  // is) - as a local file system shows one process another's un-fsynced
  // create. Waiting there too made every lookup of a create storm wait for
  // someone else's sync, and halved concurrent creates.
  if (!active_ || !wrote_) return Status::OK();
  return kv_->SyncThrough(max_seq_);
}

}  // namespace shoal::meta
