// MetaService: the RPC face of shoal-meta. Adapts each request to MetaStore or
// ClusterManager and stamps every reply with the cluster table version.
// Handlers run on the server's worker pool (they block on RocksDB).
#pragma once

#include <array>
#include <atomic>

#include "common/rpc/server.h"
#include "meta/cluster_manager.h"
#include "meta/meta_store.h"

namespace shoal::meta {

// Requests and errors per method, indexed by method id (all ids are < 256).
struct MetaServiceStats {
  std::array<std::atomic<uint64_t>, 256> requests{};
  std::array<std::atomic<uint64_t>, 256> errors{};
};

void RegisterMetaService(rpc::RpcServer& server, MetaStore& store, ClusterManager& cluster,
                         MetaServiceStats& stats);

// Prometheus text: requests and errors per method, inodes, nodes and targets by state.
std::string RenderMetaMetrics(const MetaStore& store, const ClusterManager& cluster, const MetaServiceStats& stats);

}  // namespace shoal::meta
