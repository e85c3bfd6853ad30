#include "meta/meta_service.h"

#include <optional>

#include "common/metrics.h"

namespace shoal::meta {

namespace {

using Call = std::shared_ptr<rpc::ServerCall>;

// Registers a handler that parses Req, runs `fn(req, &rsp)` and replies with
// rsp (stamped with the table version) or with the error.
//
// Group commit: the operation's writes are applied without a sync (so the
// operation holds its locks only while it applies them), and the handler waits
// for them to be durable - with every other operation's that was applied by
// then, one WAL sync for all - before it answers: no operation is
// acknowledged before it is durable. (A read may see another operation's
// applied batch before that one is answered; see DeferredSync::Wait.)
template <typename Req, typename Rsp, typename Fn>
void Serve(rpc::RpcServer& server, proto::Method method, ClusterManager& cluster, MetaServiceStats& stats, Fn fn) {
  // The namespace and the cluster state share one Kv (main.cc), so one scope covers both.
  Kv* kv = cluster.kv();
  server.Register(method, rpc::RpcServer::Dispatch::kPool, [kv, &cluster, &stats, method, fn](Call call) {
    stats.requests[method % 256].fetch_add(1, std::memory_order_relaxed);
    Req req;
    if (!call->Parse(&req)) return;
    Rsp rsp;
    Status st;
    MetaStore::DirChangeScope dirs;
    {
      DeferredSync scope(kv);
      st = fn(req, &rsp);
      if (Status durable = scope.Wait(); !durable.ok()) st = durable;
    }
    if (!st.ok()) {
      stats.errors[method % 256].fetch_add(1, std::memory_order_relaxed);
      return call->ReplyError(st);
    }
    if constexpr (requires { rsp.mutable_dirs(); }) {
      if (!dirs.empty()) dirs.Fill(rsp.mutable_dirs());
    }
    if constexpr (requires { rsp.set_table_version(1); }) rsp.set_table_version(cluster.version());
    call->Reply(rsp);
  });
}

std::string MethodName(int m) { return proto::Method_Name(static_cast<proto::Method>(m)); }

Status AttrInto(Result<proto::Attr> r, proto::Attr* out) {
  if (!r.ok()) return r.status();
  *out = std::move(r).value();
  return Status::OK();
}

// Answers a retried call with the attributes of the inode its first attempt
// answered (as they are now), or with OK.
auto ReplayAttr(MetaStore& store, proto::Attr* out) {
  return [&store, out](uint64_t ino) { return AttrInto(store.GetAttr(ino), out); };
}
Status ReplayOk(uint64_t) { return Status::OK(); }

// Runs a mutating call at most once per RequestId: a retry of a call that
// committed is answered by `replay(inode the first attempt answered)`
// instead of running again (see MetaStore::BeginCall).
template <typename Run, typename Replay>
Status Once(MetaStore& store, const proto::RequestId& rid, Run run, Replay replay, uint64_t open_handle = 0) {
  ASSIGN_OR_RETURN(std::optional<uint64_t> done, store.BeginCall(rid));
  if (done) {
    // The first attempt's batch may be applied but not yet synced (group
    // commit): this answer acknowledges it, so it waits for that sync too.
    RETURN_IF_ERROR(store.SyncApplied());
    return replay(*done);
  }
  Status st;
  {
    MetaStore::CallScope scope(rid, open_handle);
    st = run(scope);
  }
  store.EndCall(rid);
  return st;
}

}  // namespace

void RegisterMetaService(rpc::RpcServer& server, MetaStore& store, ClusterManager& cluster,
                         MetaServiceStats& stats) {
  using namespace proto;
  Serve<LookupReq, EntryRsp>(server, META_LOOKUP, cluster, stats, [&](const LookupReq& r, EntryRsp* o) {
    return AttrInto(store.Lookup(r.caller(), r.parent(), r.name()), o->mutable_attr());
  });
  Serve<GetAttrReq, AttrRsp>(server, META_GETATTR, cluster, stats, [&](const GetAttrReq& r, AttrRsp* o) {
    return AttrInto(store.GetAttr(r.ino()), o->mutable_attr());
  });
  Serve<SetAttrReq, AttrRsp>(server, META_SETATTR, cluster, stats, [&](const SetAttrReq& r, AttrRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.SetAttr(r), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });
  Serve<CreateReq, EntryRsp>(server, META_CREATE, cluster, stats, [&](const CreateReq& r, EntryRsp* o) {
    uint64_t handle = r.rid().client_id() ? r.open_handle() : 0;
    return Once(
        store, r.rid(),
        [&](MetaStore::CallScope& scope) {
          RETURN_IF_ERROR(AttrInto(store.Create(r.caller(), r.parent(), r.name(), r.mode(), r.exclusive(), r.flags()),
                                   o->mutable_attr()));
          // An existing file was opened, not created: record that open now.
          if (handle && !scope.opened()) return store.RecordOpen(r.rid().client_id(), o->attr().ino(), handle);
          return Status::OK();
        },
        ReplayAttr(store, o->mutable_attr()), handle);
  });
  Serve<MknodReq, EntryRsp>(server, META_MKNOD, cluster, stats, [&](const MknodReq& r, EntryRsp* o) {
    return Once(store, r.rid(), [&](auto&) {
          return AttrInto(store.Mknod(r.caller(), r.parent(), r.name(), r.type(), r.mode(), r.rdev()), o->mutable_attr());
        },
        ReplayAttr(store, o->mutable_attr()));
  });
  Serve<MkdirReq, EntryRsp>(server, META_MKDIR, cluster, stats, [&](const MkdirReq& r, EntryRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.Mkdir(r.caller(), r.parent(), r.name(), r.mode()), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });
  Serve<SymlinkReq, EntryRsp>(server, META_SYMLINK, cluster, stats, [&](const SymlinkReq& r, EntryRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.Symlink(r.caller(), r.parent(), r.name(), r.target()), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });
  Serve<LinkReq, EntryRsp>(server, META_LINK, cluster, stats, [&](const LinkReq& r, EntryRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.Link(r.caller(), r.ino(), r.new_parent(), r.new_name()), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });
  Serve<UnlinkReq, EmptyRsp>(server, META_UNLINK, cluster, stats, [&](const UnlinkReq& r, EmptyRsp*) {
    return Once(store, r.rid(), [&](auto&) { return store.Unlink(r.caller(), r.parent(), r.name()); }, ReplayOk);
  });
  Serve<RmdirReq, EmptyRsp>(server, META_RMDIR, cluster, stats, [&](const RmdirReq& r, EmptyRsp*) {
    return Once(store, r.rid(), [&](auto&) { return store.Rmdir(r.caller(), r.parent(), r.name()); }, ReplayOk);
  });
  Serve<RenameReq, EmptyRsp>(server, META_RENAME, cluster, stats, [&](const RenameReq& r, EmptyRsp*) {
    return Once(store, r.rid(), [&](auto&) { return store.Rename(r.caller(), r.parent(), r.name(), r.new_parent(), r.new_name(), r.no_replace()); },
                ReplayOk);
  });
  Serve<ReadlinkReq, ReadlinkRsp>(server, META_READLINK, cluster, stats, [&](const ReadlinkReq& r, ReadlinkRsp* o) {
    auto t = store.Readlink(r.ino());
    if (!t.ok()) return t.status();
    o->set_target(*t);
    return Status::OK();
  });
  Serve<ReadDirReq, ReadDirRsp>(server, META_READDIR, cluster, stats, [&](const ReadDirReq& r, ReadDirRsp* o) {
    bool eof = false;
    auto rows = store.ReadDir(r.caller(), r.ino(), r.start_after(), r.limit() ? r.limit() : 1024, r.plus(), &eof);
    if (!rows.ok()) return rows.status();
    for (auto& row : *rows) {
      DirEntry* e = o->add_entries();
      e->set_name(std::move(row.name));
      e->set_ino(row.ino);
      e->set_type(row.type);
      if (r.plus()) *e->mutable_attr() = std::move(row.attr);
    }
    o->set_eof(eof);
    return Status::OK();
  });
  Serve<StatFsReq, StatFsRsp>(server, META_STATFS, cluster, stats, [&](const StatFsReq&, StatFsRsp* o) {
    uint64_t total, free;
    cluster.Capacity(&total, &free);
    o->set_total_bytes(total);
    o->set_free_bytes(free);
    o->set_files(store.CountInodes());
    return Status::OK();
  });
  Serve<OpenReq, AttrRsp>(server, META_OPEN, cluster, stats, [&](const OpenReq& r, AttrRsp* o) {
    RETURN_IF_ERROR(AttrInto(store.Open(r.caller(), r.ino(), r.flags()), o->mutable_attr()));
    if (r.handle() && r.client_id()) return store.RecordOpen(r.client_id(), r.ino(), r.handle());
    return Status::OK();
  });
  Serve<UpdateLengthReq, AttrRsp>(server, META_UPDATE_LENGTH, cluster, stats, [&](const UpdateLengthReq& r, AttrRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.UpdateLength(r.ino(), r.length(), r.has_writer() ? &r.writer() : nullptr), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });
  Serve<SetLayoutReq, AttrRsp>(server, META_SET_LAYOUT, cluster, stats, [&](const SetLayoutReq& r, AttrRsp* o) {
    return Once(store, r.rid(), [&](auto&) { return AttrInto(store.SetLayout(r.caller(), r.ino(), r.chunk_size(), r.stripe_width()), o->mutable_attr()); },
                ReplayAttr(store, o->mutable_attr()));
  });

  Serve<SessionReq, SessionRsp>(server, META_SESSION, cluster, stats, [&](const SessionReq& r, SessionRsp* o) {
    if (r.close()) return store.CloseSession(r.client_id());
    bool known = false;
    ASSIGN_OR_RETURN(uint32_t lease, store.RenewSession(r.client_id(), r.lease_ms(), &known));
    for (const proto::OpenHandle& h : r.reopen()) {
      Status st = store.RecordOpen(r.client_id(), h.ino(), h.handle());
      if (!st.ok() && st.code() != NOT_FOUND) return st;  // a file gone meanwhile has nothing to keep
    }
    o->set_lease_ms(lease);
    o->set_known(known);
    o->set_instance_id(store.instance_id());
    return Status::OK();
  });
  Serve<ReleaseReq, EmptyRsp>(server, META_RELEASE, cluster, stats, [&](const ReleaseReq& r, EmptyRsp*) {
    return store.Release(r.client_id(), r.ino(), r.handle());
  });
  Serve<SetXattrReq, EmptyRsp>(server, META_SETXATTR, cluster, stats, [&](const SetXattrReq& r, EmptyRsp*) {
    return Once(store, r.rid(), [&](auto&) { return store.SetXattr(r.caller(), r.ino(), r.name(), r.value(), r.flags()); },
                ReplayOk);
  });
  Serve<GetXattrReq, GetXattrRsp>(server, META_GETXATTR, cluster, stats, [&](const GetXattrReq& r, GetXattrRsp* o) {
    ASSIGN_OR_RETURN(*o->mutable_value(), store.GetXattr(r.caller(), r.ino(), r.name()));
    return Status::OK();
  });
  Serve<ListXattrReq, ListXattrRsp>(server, META_LISTXATTR, cluster, stats, [&](const ListXattrReq& r, ListXattrRsp* o) {
    ASSIGN_OR_RETURN(auto names, store.ListXattr(r.caller(), r.ino()));
    for (auto& n : names) o->add_names(std::move(n));
    return Status::OK();
  });
  Serve<RemoveXattrReq, EmptyRsp>(server, META_REMOVEXATTR, cluster, stats, [&](const RemoveXattrReq& r, EmptyRsp*) {
    return Once(store, r.rid(), [&](auto&) { return store.RemoveXattr(r.caller(), r.ino(), r.name()); }, ReplayOk);
  });

  Serve<RegisterReq, RegisterRsp>(server, CLUSTER_REGISTER, cluster, stats, [&](const RegisterReq& r, RegisterRsp* o) {
    ASSIGN_OR_RETURN(*o, cluster.Register(r));
    return Status::OK();
  });
  Serve<HeartbeatReq, HeartbeatRsp>(server, CLUSTER_HEARTBEAT, cluster, stats, [&](const HeartbeatReq& r, HeartbeatRsp* o) {
    *o = cluster.Heartbeat(r);
    return Status::OK();
  });
  Serve<GetTableReq, ClusterTable>(server, CLUSTER_GET_TABLE, cluster, stats, [&](const GetTableReq&, ClusterTable* o) {
    *o = cluster.Table();
    return Status::OK();
  });
}

std::string RenderMetaMetrics(const MetaStore& store, const ClusterManager& cluster, const MetaServiceStats& stats) {
  std::string out;
  bool first = true;
  for (int m = 0; m < 256; ++m) {
    uint64_t n = stats.requests[m].load(std::memory_order_relaxed);
    if (n == 0) continue;
    std::string method = MethodName(m);
    RenderMetric(&out, "shoal_meta_requests_total", "counter", first ? "metadata requests by method" : "",
                 static_cast<double>(n), "method=\"" + method + "\"");
    RenderMetric(&out, "shoal_meta_errors_total", "counter", first ? "requests answered with an error" : "",
                 static_cast<double>(stats.errors[m].load(std::memory_order_relaxed)), "method=\"" + method + "\"");
    first = false;
  }
  RenderMetric(&out, "shoal_meta_inodes", "gauge", "live inodes", static_cast<double>(store.CountInodes()));
  RenderMetric(&out, "shoal_meta_sessions", "gauge", "client sessions with a live lease",
               static_cast<double>(store.CountSessions()));
  RenderMetric(&out, "shoal_meta_open_files", "gauge", "open-file records held by clients",
               static_cast<double>(store.CountOpenRecords()));
  RenderMetric(&out, "shoal_meta_orphans", "gauge", "unlinked files kept while open",
               static_cast<double>(store.CountOrphans()));
  proto::ClusterTable t = cluster.Table();
  RenderMetric(&out, "shoal_meta_table_version", "gauge", "cluster table version", static_cast<double>(t.version()));
  int online = 0, serving = 0;
  for (const auto& n : t.nodes()) online += n.state() == proto::NODE_ONLINE;
  for (const auto& tg : t.targets()) serving += tg.state() == proto::TARGET_SERVING;
  RenderMetric(&out, "shoal_meta_nodes", "gauge", "storage nodes by state", online, "state=\"online\"");
  RenderMetric(&out, "shoal_meta_nodes", "gauge", "", t.nodes_size() - online, "state=\"offline\"");
  RenderMetric(&out, "shoal_meta_targets", "gauge", "targets by state", serving, "state=\"serving\"");
  RenderMetric(&out, "shoal_meta_targets", "gauge", "", t.targets_size() - serving, "state=\"offline\"");
  return out;
}

}  // namespace shoal::meta
