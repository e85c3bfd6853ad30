// Results of mutating calls, remembered for retries (see MetaStore::BeginCall).
#include "meta/meta_store.h"

namespace shoal::meta {

namespace {
// The thread's current mutating call. A thread-local rather than a parameter
// of every operation: the operations stay as they are, and Commit finds the
// call it belongs to. Handlers run a call start to end on one thread.
thread_local MetaStore::CallScope* current_call = nullptr;

// At most this many results are forgotten in one batch (the rest go when the
// session ends): a client's first call after a meta restart may name an
// oldest_pending far above anything meta remembers dropping.
constexpr uint64_t kMaxForgetPerCall = 256;

std::string RequestKey(uint64_t client_id, uint64_t request_id) {
  return MetaStore::InodeKey(client_id) + MetaStore::InodeKey(request_id);
}
bool Tracked(const proto::RequestId& rid) { return rid.client_id() != 0 && rid.request_id() != 0; }
}  // namespace

MetaStore::CallScope::CallScope(const proto::RequestId& rid, uint64_t open_handle)
    : rid_(rid), open_handle_(open_handle), prev_(current_call) {
  current_call = this;
}

MetaStore::CallScope::~CallScope() { current_call = prev_; }

Result<std::optional<uint64_t>> MetaStore::BeginCall(const proto::RequestId& rid) {
  if (!Tracked(rid)) return std::optional<uint64_t>();
  auto id = std::make_pair(rid.client_id(), rid.request_id());
  {
    // A retry that overtook its first attempt waits for it: then the record
    // (if it committed) answers.
    std::unique_lock<std::mutex> l(call_mu_);
    call_cv_.wait(l, [&] { return !running_calls_.count(id); });
    running_calls_.insert(id);
  }
  auto done = kv_->Get(Cf::kRequests, RequestKey(rid.client_id(), rid.request_id()));
  if (done.ok() && done->size() == 8) {
    NoteReplayed();
    EndCall(rid);
    return std::optional<uint64_t>(ReadBe64(*done));
  }
  if (!done.ok() && done.status().code() != proto::NOT_FOUND) {
    EndCall(rid);
    return done.status();
  }
  return std::optional<uint64_t>();
}

void MetaStore::EndCall(const proto::RequestId& rid) {
  if (!Tracked(rid)) return;
  {
    std::lock_guard<std::mutex> l(call_mu_);
    running_calls_.erase({rid.client_id(), rid.request_id()});
  }
  call_cv_.notify_all();
}

Status MetaStore::Commit(KvBatch& b, uint64_t result_ino) {
  CallScope* call = current_call;
  if (call && Tracked(call->rid_)) {
    const proto::RequestId& rid = call->rid_;
    b.Put(Cf::kRequests, RequestKey(rid.client_id(), rid.request_id()), InodeKey(result_ino));
    EnsureSession(b, rid.client_id());  // whose end drops the record
    // The client has its answers below oldest_pending: forget them (keys
    // that were never written cost a tombstone each, nothing more).
    std::lock_guard<std::mutex> l(call_mu_);
    uint64_t& below = forgotten_below_[rid.client_id()];
    uint64_t upto = std::min(rid.oldest_pending(), rid.request_id());
    for (uint64_t r = std::max(below, upto > kMaxForgetPerCall ? upto - kMaxForgetPerCall : 0); r < upto; ++r)
      b.Delete(Cf::kRequests, RequestKey(rid.client_id(), r));
    below = std::max(below, upto);
  }
  bool open = call && call->open_handle_ && result_ino;
  if (open) PutOpenRecord(b, call->rid_.client_id(), result_ino, call->open_handle_);
  Status st = kv_->Write(b);
  NoteBatchWritten(st.ok());
  if (st.ok() && open) {
    ++open_records_;
    call->opened_ = true;
  }
  return st;
}

}  // namespace shoal::meta
