// libshoal: metadata calls, the cluster table, and path resolution.
#include "client/client.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <future>
#include <set>

#include "client/timer.h"
#include "common/log.h"
#include "common/random_id.h"
#include "common/rpc/transport_select.h"
#include "common/xattr_name.h"
#include "proto/storage.pb.h"

namespace shoal::client {

Caller ProcessCaller() {
  Caller c;
  c.set_uid(getuid());
  c.set_gid(getgid());
  return c;
}

Client::Client(const ClientOptions& options, rpc::Transport* transport)
    : options_(options),
      dir_attrs_(options.clock, options.dir_attr_cache_ms),
      client_id_(RandomNonZero64()),
      timer_(std::make_unique<Timer>(options.clock)),
      transport_(transport),
      channels_(rpc::Credentials{options.cluster_id, options.cluster_key, 5000}, transport, 64ull << 20,
                options.clock),
      meta_(channels_.Get(options.meta_address)) {}

Client::~Client() {
  if (session_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> l(session_mu_);
      session_stop_ = true;
    }
    session_cv_.notify_all();
    session_thread_.join();
    // Release every open at once (a dead client's go when its lease passes).
    proto::SessionReq req;
    req.set_client_id(client_id_);
    req.set_close(true);
    proto::SessionRsp rsp;
    Status st = meta_->CallSync(proto::META_SESSION, req, &rsp, std::min(options_.meta_timeout_ms, 2000));
    if (!st.ok()) LOG_DEBUG("closing session {:016x}: {}", client_id_, st.ToString());
  }
  {
    std::unique_lock<std::shared_mutex> l(closing_mu_);
    closing_ = true;
  }
  timer_.reset();  // runs due retries, which now end instead of resending
  // Reads handed to a loop before closing_ was set are queued there and sent
  // at the end of that loop iteration: let each loop get past it (a task that
  // posts a task runs after the current iteration's end), so that no queued
  // read refers to a server connection once those go.
  for (auto& l : loops_) {
    std::promise<void> passed;
    auto f = passed.get_future();
    loop::EventLoop* lp = l.get();
    lp->Post([lp, &passed] { lp->Post([&passed] { passed.set_value(); }); });
    f.wait();
  }
  // The channels go next (the last members, so destroyed first): their
  // outstanding calls fail, and the failures end without retrying, while
  // closing_mu_ and everything else they touch still exist.
}

Status Client::StartLoops() {
  for (int i = 0; i < std::max(1, options_.event_loops); ++i) {
    loop::EventLoop::Options o;
    o.name = "client-loop-" + std::to_string(i);
    o.clock = options_.clock;
    o.wide_sqes = options_.wide_sqes;
    ASSIGN_OR_RETURN(auto l, loop::EventLoop::Start(o));
    loops_.push_back(std::move(l));
  }
  return Status::OK();
}

std::vector<loop::EventLoop*> Client::Loops() const {
  std::vector<loop::EventLoop*> v;
  for (auto& l : loops_) v.push_back(l.get());
  return v;
}

Client::Server* Client::ServerFor(const std::string& address) {
  size_t on = loops_.size();
  for (size_t i = 0; i < loops_.size(); ++i)
    if (loops_[i]->InLoopThread()) on = i;
  std::lock_guard<std::mutex> l(servers_mu_);
  ServerSet& set = servers_[address];
  if (set.on_loop.empty()) {
    set.on_loop.resize(loops_.size());
    // Spread servers over the loops by the order they were first used.
    set.home = (servers_.size() - 1) % loops_.size();
  }
  size_t i = on < loops_.size() ? on : set.home;
  auto& s = set.on_loop[i];
  if (!s) {
    s = std::make_unique<Server>();
    s->loop = loops_[i].get();
    rpc::LoopChannel::Options o;
    o.address = address;
    o.creds = rpc::Credentials{options_.cluster_id, options_.cluster_key, 5000};
    s->channel = std::make_unique<rpc::LoopChannel>(o, transport_, s->loop);
  }
  return s.get();
}

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  ASSIGN_OR_RETURN(rpc::Transport * transport, rpc::SelectTransport(options.transport));
  return Connect(options, transport);
}

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options, rpc::Transport* transport) {
  std::unique_ptr<Client> c(new Client(options, transport));
  RETURN_IF_ERROR(c->StartLoops());
  RETURN_IF_ERROR(c->RefreshTable());
  RETURN_IF_ERROR(c->RenewSession().status());
  Client* raw = c.get();
  try {
    c->session_thread_ = std::thread([raw] { raw->SessionLoop(); });
  } catch (const std::system_error& e) {
    return Error(proto::INTERNAL, std::string("cannot start the session thread: ") + e.what());
  }
  return c;
}

Result<proto::SessionRsp> Client::SendSession(bool with_open_handles) {
  proto::SessionReq req;
  req.set_client_id(client_id_);
  req.set_lease_ms(static_cast<uint32_t>(std::max(options_.session_lease_ms, 1)));
  if (with_open_handles) {
    std::lock_guard<std::mutex> l(open_mu_);
    for (const auto& [handle, ino] : open_handles_) {
      proto::OpenHandle* h = req.add_reopen();
      h->set_ino(ino);
      h->set_handle(handle);
    }
  }
  proto::SessionRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_SESSION, req, &rsp));
  return rsp;
}

Result<bool> Client::RenewSession() {
  ASSIGN_OR_RETURN(proto::SessionRsp rsp, SendSession(false));
  uint64_t seen = meta_instance_.exchange(rsp.instance_id());
  if (seen != 0 && seen != rsp.instance_id()) {
    // The opens made from here on reach the new instance themselves; those
    // before are in the list.
    ASSIGN_OR_RETURN(rsp, SendSession(true));
    LOG_INFO("meta restarted: recorded this client's open files again");
  }
  return rsp.known();
}

void Client::SessionLoop() {
  const Clock* clock = options_.clock;
  int64_t period = options_.session_renew_ms > 0 ? options_.session_renew_ms : std::max(options_.session_lease_ms / 3, 1);
  std::unique_lock<std::mutex> l(session_mu_);
  for (;;) {
    if (clock->WaitUntil(session_cv_, l, clock->NowMs() + period, [this] { return session_stop_; })) return;
    l.unlock();
    Result<bool> known = RenewSession();
    if (!known.ok()) {
      LOG_WARN("renewing session {:016x}: {}", client_id_, known.status().ToString());
    } else if (!*known) {
      // The lease ran out (meta unreachable too long): meta has let go of
      // this client's open files, and unlinked ones among them may be gone.
      LOG_WARN("session {:016x} had expired at meta: files it held open may have been reclaimed", client_id_);
    }
    l.lock();
  }
}

class Client::PendingRequest {
 public:
  PendingRequest(Client* c, uint64_t id) : c_(c), id_(id) {}
  PendingRequest(PendingRequest&& o) noexcept : c_(o.c_), id_(o.id_) { o.c_ = nullptr; }
  ~PendingRequest() {
    if (!c_) return;
    std::lock_guard<std::mutex> l(c_->pending_mu_);
    c_->pending_requests_.erase(id_);
  }

 private:
  Client* c_;
  uint64_t id_;
};

Client::PendingRequest Client::Stamp(proto::RequestId* rid) {
  std::lock_guard<std::mutex> l(pending_mu_);
  uint64_t id = next_request_id_++;
  pending_requests_.insert(id);
  rid->set_client_id(client_id_);
  rid->set_request_id(id);
  rid->set_oldest_pending(*pending_requests_.begin());
  return PendingRequest(this, id);
}

template <typename Req, typename Rsp>
Status Client::MetaCall(proto::Method m, const Req& req, Rsp* rsp) {
  // Only an unreachable meta (a restart takes a moment; a broken connection
  // loses the reply) and a timed-out attempt are retried, with backoff and
  // within meta_timeout_ms in all; a metadata error is an answer. A retry
  // sends the very same request: a mutating one keeps its request id, so
  // meta answers it with the first attempt's result if that one committed.
  const Clock* clock = options_.clock;
  int64_t deadline_ms = clock->NowMs() + options_.meta_timeout_ms;
  int attempt_ms = options_.meta_attempt_timeout_ms > 0 ? std::min(options_.meta_attempt_timeout_ms, options_.meta_timeout_ms)
                                                        : options_.meta_timeout_ms;
  Status st;
  const uint64_t dir_generation = dir_attrs_.generation();
  for (int backoff_ms = 50;; backoff_ms = std::min(backoff_ms * 2, 1000)) {
    int64_t left = deadline_ms - clock->NowMs();
    st = meta_->CallSync(m, req, rsp, static_cast<int>(std::clamp<int64_t>(left, 1, attempt_ms)));
    bool again = st.code() == proto::UNAVAILABLE || st.code() == proto::TIMEOUT;
    if (!again || clock->NowMs() + backoff_ms > deadline_ms) break;
    clock->SleepUntil(clock->NowMs() + backoff_ms);
  }
  if (st.ok()) {
    if constexpr (requires { rsp->table_version(); }) NoteTableVersion(rsp->table_version());
  }
  // What a mutation did to directories: reported when it succeeded; when it
  // failed (an error may come after its batch was applied, e.g. a failed
  // sync) or its outcome is unknown, cached directories may be out of date.
  if constexpr (requires { req.rid(); }) {
    if constexpr (requires { rsp->dirs(); }) {
      if (st.ok()) dir_attrs_.Note(rsp->dirs(), dir_generation);
    }
    if (!st.ok()) dir_attrs_.Clear();
  }
  return st;
}

void Client::NoteTableVersion(uint64_t v) {
  uint64_t seen = seen_table_version_.load();
  while (v > seen && !seen_table_version_.compare_exchange_weak(seen, v)) {
  }
}

Status Client::RefreshTable() {
  proto::ClusterTable t;
  RETURN_IF_ERROR(MetaCall(proto::CLUSTER_GET_TABLE, proto::GetTableReq(), &t));
  NoteTableVersion(t.version());
  // Each chain is served by its first serving target (one replica here).
  std::map<uint32_t, Placement> placement;
  for (const auto& c : t.chains())
    for (uint32_t tid : c.targets()) {
      if (placement.count(c.chain_id())) break;
      for (const auto& target : t.targets())
        if (target.target_id() == tid && target.state() == proto::TARGET_SERVING)
          for (const auto& n : t.nodes())
            if (n.node_id() == target.node_id()) placement[c.chain_id()] = Placement{c.chain_id(), tid, n.node_id(), n.address()};
    }
  std::unique_lock<std::shared_mutex> l(table_mu_);
  if (t.version() >= table_.version()) {
    table_ = std::move(t);
    chain_placement_ = std::move(placement);
  }
  return Status::OK();
}

Result<proto::ClusterTable> Client::ClusterTable(bool refresh) {
  if (refresh) RETURN_IF_ERROR(RefreshTable());
  std::shared_lock<std::shared_mutex> l(table_mu_);
  return table_;
}

Result<Client::Placement> Client::Place(const proto::Layout& layout, uint64_t index) {
  if (layout.stripe_width() == 0 || layout.chains_size() == 0) return Error(proto::INVALID_ARGUMENT, "file has no layout");
  return PlaceChain(layout.chains(static_cast<int>(index % layout.chains_size())));
}

Result<Client::Placement> Client::PlaceChain(uint32_t chain_id) {
  for (int pass = 0; pass < 2; ++pass) {
    {
      std::shared_lock<std::shared_mutex> l(table_mu_);
      bool fresh = seen_table_version_.load() <= table_.version();
      auto it = chain_placement_.find(chain_id);
      if (fresh && it != chain_placement_.end()) return it->second;
      if (fresh && pass == 1) return Error(proto::UNAVAILABLE, "no serving target in chain " + std::to_string(chain_id));
    }
    RETURN_IF_ERROR(RefreshTable());
  }
  return Error(proto::UNAVAILABLE, "chain " + std::to_string(chain_id) + " has no serving target");
}

#define SHOAL_ATTR_CALL(method, Req, req)            \
  proto::AttrRsp rsp;                                \
  RETURN_IF_ERROR(MetaCall(method, req, &rsp));      \
  return std::move(*rsp.mutable_attr())

Result<Attr> Client::Lookup(const Caller& c, uint64_t parent, const std::string& name) {
  proto::LookupReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  SHOAL_ATTR_CALL(proto::META_LOOKUP, LookupReq, req);
}

Result<Attr> Client::GetAttr(uint64_t ino, int64_t* fresh_for_ms) {
  if (auto own = dir_attrs_.Get(ino)) {
    if (fresh_for_ms) *fresh_for_ms = own->fresh_for_ms;
    return std::move(own->attr);
  }
  proto::GetAttrReq req;
  req.set_ino(ino);
  SHOAL_ATTR_CALL(proto::META_GETATTR, GetAttrReq, req);
}

Result<Attr> Client::SetAttr(proto::SetAttrReq req) {
  if (req.set_size()) {
    // Authorise at meta first (every check, nothing committed): storage
    // servers do not check permissions, so cutting chunks for a caller meta
    // would refuse destroys data it was never allowed to touch.
    proto::SetAttrReq ask = req;
    ask.set_check_only(true);
    proto::AttrRsp authorised;
    {
      auto asking = Stamp(ask.mutable_rid());
      RETURN_IF_ERROR(MetaCall(proto::META_SETATTR, ask, &authorised));
    }
    // The commit names this check: meta applies what it authorised here.
    req.set_intent(ask.rid().request_id());
    const Attr& cur = authorised.attr();
    if (cur.type() == proto::REGULAR) {
      // Then cut the chunks, before meta commits the new size: if this fails,
      // meta still has the old size and no stale bytes can reappear past a
      // new, shorter end.
      std::set<uint32_t> done;
      for (int i = 0; i < cur.layout().chains_size(); ++i) {
        ASSIGN_OR_RETURN(Placement p, Place(cur.layout(), i));
        if (!done.insert(p.target_id).second) continue;
        proto::TruncateReq t;
        t.set_target_id(p.target_id);
        t.set_inode(req.ino());
        t.set_length(req.size());
        t.set_chunk_size(cur.layout().chunk_size());
        proto::Empty rsp;
        RETURN_IF_ERROR(channels_.Get(p.address)->CallSync(proto::STORAGE_TRUNCATE, t, &rsp, options_.io_timeout_ms));
      }
    }
  }
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_SETATTR, SetAttrReq, req);
}

Result<Attr> Client::Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode, bool exclusive,
                            uint32_t flags, uint64_t* handle) {
  proto::CreateReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  req.set_mode(mode);
  req.set_exclusive(exclusive);
  req.set_flags(flags);
  if (handle) {
    *handle = next_handle_++;
    req.set_open_handle(*handle);
  }
  auto pending = Stamp(req.mutable_rid());
  proto::EntryRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_CREATE, req, &rsp));
  if (handle) NoteOpen(*handle, rsp.attr().ino());
  // An existing file that was opened, not made (a new one has ctime == mtime
  // == atime and size 0, and truncating it would change nothing).
  if ((flags & O_TRUNC) && rsp.attr().type() == proto::REGULAR && rsp.attr().size() > 0)
    return TruncateOnOpen(c, rsp.attr(), handle);
  return std::move(*rsp.mutable_attr());
}

Result<Attr> Client::Mknod(const Caller& c, uint64_t parent, const std::string& name, proto::FileType type,
                           uint32_t mode, uint64_t rdev) {
  proto::MknodReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  req.set_type(type);
  req.set_mode(mode);
  req.set_rdev(rdev);
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_MKNOD, MknodReq, req);
}

Result<Attr> Client::TruncateOnOpen(const Caller& c, const Attr& file, const uint64_t* handle) {
  proto::SetAttrReq req;
  *req.mutable_caller() = c;
  req.set_ino(file.ino());
  req.set_set_size(true);
  req.set_size(0);
  auto truncated = SetAttr(std::move(req));
  // The open fails with the truncate, so its record must not outlive it.
  if (!truncated.ok() && handle) {
    Status released = Release(file.ino(), *handle);
    if (!released.ok())
      LOG_WARN("inode {}: releasing the open of a failed O_TRUNC: {}", file.ino(), released.ToString());
  }
  return truncated;
}

Result<Attr> Client::Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode) {
  proto::MkdirReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  req.set_mode(mode);
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_MKDIR, MkdirReq, req);
}

Result<Attr> Client::Symlink(const Caller& c, uint64_t parent, const std::string& name, const std::string& target) {
  proto::SymlinkReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  req.set_target(target);
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_SYMLINK, SymlinkReq, req);
}

Result<Attr> Client::Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  proto::LinkReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_new_parent(new_parent);
  req.set_new_name(new_name);
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_LINK, LinkReq, req);
}

Result<Attr> Client::Open(const Caller& c, uint64_t ino, uint32_t flags, uint64_t* handle) {
  proto::OpenReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_flags(flags);
  if (handle) {
    *handle = next_handle_++;
    req.set_handle(*handle);
    req.set_client_id(client_id_);
  }
  proto::AttrRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_OPEN, req, &rsp));
  if (handle) NoteOpen(*handle, ino);
  // open(2): O_TRUNC of a regular file truncates it (Linux: even with
  // O_RDONLY, write permission checked above), and marks mtime and
  // ctime even when it was empty already.
  if ((flags & O_TRUNC) && rsp.attr().type() == proto::REGULAR)
    return TruncateOnOpen(c, rsp.attr(), handle);
  return std::move(*rsp.mutable_attr());
}

void Client::NoteOpen(uint64_t handle, uint64_t ino) {
  std::lock_guard<std::mutex> l(open_mu_);
  open_handles_[handle] = ino;
}

Status Client::Release(uint64_t ino, uint64_t handle) {
  {
    std::lock_guard<std::mutex> l(open_mu_);
    open_handles_.erase(handle);
  }
  proto::ReleaseReq req;
  req.set_client_id(client_id_);
  req.set_ino(ino);
  req.set_handle(handle);
  proto::EmptyRsp rsp;
  return MetaCall(proto::META_RELEASE, req, &rsp);
}

Result<Attr> Client::UpdateLength(uint64_t ino, uint64_t length, const Caller* writer) {
  proto::UpdateLengthReq req;
  req.set_ino(ino);
  req.set_length(length);
  if (writer) *req.mutable_writer() = *writer;
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_UPDATE_LENGTH, UpdateLengthReq, req);
}

Result<Attr> Client::SetLayout(const Caller& c, uint64_t ino, uint32_t chunk_size, uint32_t stripe_width) {
  proto::SetLayoutReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_chunk_size(chunk_size);
  req.set_stripe_width(stripe_width);
  auto pending = Stamp(req.mutable_rid());
  SHOAL_ATTR_CALL(proto::META_SET_LAYOUT, SetLayoutReq, req);
}
#undef SHOAL_ATTR_CALL

void Client::ForgetDentry(uint64_t parent, const std::string& name) {
  std::lock_guard<std::mutex> l(dentry_mu_);
  dentries_.erase({parent, name});
}

Status Client::Unlink(const Caller& c, uint64_t parent, const std::string& name) {
  proto::UnlinkReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  proto::EmptyRsp rsp;
  ForgetDentry(parent, name);
  auto pending = Stamp(req.mutable_rid());
  return MetaCall(proto::META_UNLINK, req, &rsp);
}

Status Client::Rmdir(const Caller& c, uint64_t parent, const std::string& name) {
  proto::RmdirReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  proto::EmptyRsp rsp;
  ForgetDentry(parent, name);
  auto pending = Stamp(req.mutable_rid());
  return MetaCall(proto::META_RMDIR, req, &rsp);
}

Status Client::Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, bool no_replace) {
  proto::RenameReq req;
  *req.mutable_caller() = c;
  req.set_parent(parent);
  req.set_name(name);
  req.set_new_parent(new_parent);
  req.set_new_name(new_name);
  req.set_no_replace(no_replace);
  ForgetDentry(parent, name);
  ForgetDentry(new_parent, new_name);
  proto::EmptyRsp rsp;
  auto pending = Stamp(req.mutable_rid());
  return MetaCall(proto::META_RENAME, req, &rsp);
}

Result<std::string> Client::Readlink(uint64_t ino) {
  proto::ReadlinkReq req;
  req.set_ino(ino);
  proto::ReadlinkRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_READLINK, req, &rsp));
  return rsp.target();
}

namespace {
// Answers for the namespaces meta does not store, so they cost no round trip.
std::optional<Status> LocalXattrAnswer(const std::string& name, bool write) {
  switch (ClassifyXattr(name)) {
    case XattrNamespace::kUser:
    case XattrNamespace::kTrusted:
      return std::nullopt;
    case XattrNamespace::kSecurity:
      if (!write) return Error(proto::ATTR_NOT_FOUND, "no attribute " + name);
      [[fallthrough]];
    default:
      return Error(proto::NOT_SUPPORTED, "extended attribute namespace of " + name + " is not supported");
  }
}
}  // namespace

Status Client::SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                        uint32_t flags) {
  if (auto local = LocalXattrAnswer(name, /*write=*/true)) return *local;
  proto::SetXattrReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_name(name);
  req.set_value(value);
  req.set_flags(flags);
  proto::EmptyRsp rsp;
  auto pending = Stamp(req.mutable_rid());
  return MetaCall(proto::META_SETXATTR, req, &rsp);
}

Result<std::string> Client::GetXattr(const Caller& c, uint64_t ino, const std::string& name) {
  if (auto local = LocalXattrAnswer(name, /*write=*/false)) return *local;
  proto::GetXattrReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_name(name);
  proto::GetXattrRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_GETXATTR, req, &rsp));
  return std::move(*rsp.mutable_value());
}

Result<std::vector<std::string>> Client::ListXattr(const Caller& c, uint64_t ino) {
  proto::ListXattrReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  proto::ListXattrRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_LISTXATTR, req, &rsp));
  return std::vector<std::string>(rsp.names().begin(), rsp.names().end());
}

Status Client::RemoveXattr(const Caller& c, uint64_t ino, const std::string& name) {
  if (auto local = LocalXattrAnswer(name, /*write=*/true)) return *local;
  proto::RemoveXattrReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_name(name);
  proto::EmptyRsp rsp;
  auto pending = Stamp(req.mutable_rid());
  return MetaCall(proto::META_REMOVEXATTR, req, &rsp);
}

Result<proto::ReadDirRsp> Client::ReadDir(const Caller& c, uint64_t ino, const std::string& start_after,
                                          uint32_t limit, bool plus) {
  proto::ReadDirReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_start_after(start_after);
  req.set_limit(limit);
  req.set_plus(plus);
  proto::ReadDirRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_READDIR, req, &rsp));
  return rsp;
}

Result<proto::StatFsRsp> Client::StatFs() {
  proto::StatFsRsp rsp;
  RETURN_IF_ERROR(MetaCall(proto::META_STATFS, proto::StatFsReq(), &rsp));
  return rsp;
}

Result<Attr> Client::Resolve(const Caller& c, const std::string& path) {
  if (path.empty() || path[0] != '/') return Error(proto::INVALID_ARGUMENT, "path '" + path + "' is not absolute");
  ASSIGN_OR_RETURN(Attr cur, GetAttr(1));
  size_t pos = 1;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string name = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (name.empty() || name == ".") continue;
    if (cur.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, "'" + name + "' is under a non-directory");
    int64_t now = options_.clock->NowMs();
    {
      std::lock_guard<std::mutex> l(dentry_mu_);
      auto it = dentries_.find({cur.ino(), name});
      if (it != dentries_.end() && it->second.expires_ms > now && slash != path.size()) {
        cur = it->second.attr;
        continue;
      }
    }
    ASSIGN_OR_RETURN(Attr next, Lookup(c, cur.ino(), name));
    if (options_.dentry_cache_ms > 0 && next.type() == proto::DIRECTORY) {
      std::lock_guard<std::mutex> l(dentry_mu_);
      dentries_[{cur.ino(), name}] = Dentry{next, now + options_.dentry_cache_ms};
    }
    cur = std::move(next);
  }
  return cur;
}

Result<std::pair<Attr, std::string>> Client::ResolveParent(const Caller& c, const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash == std::string::npos || p == "/") return Error(proto::INVALID_ARGUMENT, "'" + path + "' has no parent");
  std::string name = p.substr(slash + 1);
  ASSIGN_OR_RETURN(Attr parent, Resolve(c, slash == 0 ? "/" : p.substr(0, slash)));
  return std::make_pair(std::move(parent), name);
}

}  // namespace shoal::client
