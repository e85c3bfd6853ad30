#include "meta/meta_service.h"

namespace shoal::meta {

namespace {

using Call = std::shared_ptr<rpc::ServerCall>;

// Registers a handler that parses Req, runs `fn(req, &rsp)` and replies with
// rsp (stamped with the table version) or with the error.
template <typename Req, typename Rsp, typename Fn>
void Serve(rpc::RpcServer& server, proto::Method method, ClusterManager& cluster, Fn fn) {
  server.Register(method, rpc::RpcServer::Dispatch::kPool, [&cluster, fn](Call call) {
    Req req;
    if (!call->Parse(&req)) return;
    Rsp rsp;
    Status st = fn(req, &rsp);
    if (!st.ok()) return call->ReplyError(st);
    if constexpr (requires { rsp.set_table_version(1); }) rsp.set_table_version(cluster.version());
    call->Reply(rsp);
  });
}

Status AttrInto(Result<proto::Attr> r, proto::Attr* out) {
  if (!r.ok()) return r.status();
  *out = std::move(r).value();
  return Status::OK();
}

}  // namespace

void RegisterMetaService(rpc::RpcServer& server, MetaStore& store, ClusterManager& cluster) {
  using namespace proto;
  Serve<LookupReq, EntryRsp>(server, META_LOOKUP, cluster, [&](const LookupReq& r, EntryRsp* o) {
    return AttrInto(store.Lookup(r.caller(), r.parent(), r.name()), o->mutable_attr());
  });
  Serve<GetAttrReq, AttrRsp>(server, META_GETATTR, cluster, [&](const GetAttrReq& r, AttrRsp* o) {
    return AttrInto(store.GetAttr(r.ino()), o->mutable_attr());
  });
  Serve<SetAttrReq, AttrRsp>(server, META_SETATTR, cluster, [&](const SetAttrReq& r, AttrRsp* o) {
    return AttrInto(store.SetAttr(r), o->mutable_attr());
  });
  Serve<CreateReq, EntryRsp>(server, META_CREATE, cluster, [&](const CreateReq& r, EntryRsp* o) {
    return AttrInto(store.Create(r.caller(), r.parent(), r.name(), r.mode(), r.exclusive()), o->mutable_attr());
  });
  Serve<MkdirReq, EntryRsp>(server, META_MKDIR, cluster, [&](const MkdirReq& r, EntryRsp* o) {
    return AttrInto(store.Mkdir(r.caller(), r.parent(), r.name(), r.mode()), o->mutable_attr());
  });
  Serve<SymlinkReq, EntryRsp>(server, META_SYMLINK, cluster, [&](const SymlinkReq& r, EntryRsp* o) {
    return AttrInto(store.Symlink(r.caller(), r.parent(), r.name(), r.target()), o->mutable_attr());
  });
  Serve<LinkReq, EntryRsp>(server, META_LINK, cluster, [&](const LinkReq& r, EntryRsp* o) {
    return AttrInto(store.Link(r.caller(), r.ino(), r.new_parent(), r.new_name()), o->mutable_attr());
  });
  Serve<UnlinkReq, EmptyRsp>(server, META_UNLINK, cluster, [&](const UnlinkReq& r, EmptyRsp*) {
    return store.Unlink(r.caller(), r.parent(), r.name());
  });
  Serve<RmdirReq, EmptyRsp>(server, META_RMDIR, cluster, [&](const RmdirReq& r, EmptyRsp*) {
    return store.Rmdir(r.caller(), r.parent(), r.name());
  });
  Serve<RenameReq, EmptyRsp>(server, META_RENAME, cluster, [&](const RenameReq& r, EmptyRsp*) {
    return store.Rename(r.caller(), r.parent(), r.name(), r.new_parent(), r.new_name(), r.no_replace());
  });
  Serve<ReadlinkReq, ReadlinkRsp>(server, META_READLINK, cluster, [&](const ReadlinkReq& r, ReadlinkRsp* o) {
    auto t = store.Readlink(r.ino());
    if (!t.ok()) return t.status();
    o->set_target(*t);
    return Status::OK();
  });
  Serve<ReadDirReq, ReadDirRsp>(server, META_READDIR, cluster, [&](const ReadDirReq& r, ReadDirRsp* o) {
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
  Serve<StatFsReq, StatFsRsp>(server, META_STATFS, cluster, [&](const StatFsReq&, StatFsRsp* o) {
    uint64_t total, free;
    cluster.Capacity(&total, &free);
    o->set_total_bytes(total);
    o->set_free_bytes(free);
    o->set_files(store.CountInodes());
    return Status::OK();
  });
  Serve<OpenReq, AttrRsp>(server, META_OPEN, cluster, [&](const OpenReq& r, AttrRsp* o) {
    return AttrInto(store.Open(r.caller(), r.ino(), r.flags()), o->mutable_attr());
  });
  Serve<UpdateLengthReq, AttrRsp>(server, META_UPDATE_LENGTH, cluster, [&](const UpdateLengthReq& r, AttrRsp* o) {
    return AttrInto(store.UpdateLength(r.ino(), r.length()), o->mutable_attr());
  });
  Serve<SetLayoutReq, AttrRsp>(server, META_SET_LAYOUT, cluster, [&](const SetLayoutReq& r, AttrRsp* o) {
    return AttrInto(store.SetLayout(r.caller(), r.ino(), r.chunk_size(), r.stripe_width()), o->mutable_attr());
  });

  Serve<RegisterReq, RegisterRsp>(server, CLUSTER_REGISTER, cluster, [&](const RegisterReq& r, RegisterRsp* o) {
    auto v = cluster.Register(r);
    if (!v.ok()) return v.status();
    o->set_table_version(*v);
    return Status::OK();
  });
  Serve<HeartbeatReq, HeartbeatRsp>(server, CLUSTER_HEARTBEAT, cluster, [&](const HeartbeatReq& r, HeartbeatRsp* o) {
    *o = cluster.Heartbeat(r);
    return Status::OK();
  });
  Serve<GetTableReq, ClusterTable>(server, CLUSTER_GET_TABLE, cluster, [&](const GetTableReq&, ClusterTable* o) {
    *o = cluster.Table();
    return Status::OK();
  });
}

}  // namespace shoal::meta
