// MetaService: the RPC face of shoal-meta. Adapts each request to MetaStore or
// ClusterManager and stamps every reply with the cluster table version.
// Handlers run on the server's worker pool (they block on RocksDB).
#pragma once

#include "common/rpc/server.h"
#include "meta/cluster_manager.h"
#include "meta/meta_store.h"

namespace shoal::meta {

void RegisterMetaService(rpc::RpcServer& server, MetaStore& store, ClusterManager& cluster);

}  // namespace shoal::meta
