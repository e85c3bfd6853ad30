// A whole cluster in one process for client-side tests: meta over a memory
// Kv, three storage servers over memory chunk stores, all on the in-process
// transport, whose per-address faults (delay, drop, broken connections)
// stand in for slow and failing servers.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/clock.h"
#include "common/rpc/inproc_transport.h"
#include "common/rpc/server.h"
#include "meta/cluster_manager.h"
#include "meta/meta_service.h"
#include "meta/meta_store.h"
#include "storage/chunk_store.h"
#include "storage/storage_service.h"
#include "tests/storage/storage_node.h"

namespace shoal::testing {

class InprocCluster {
 public:
  static constexpr int kNodes = 3;
  static std::string StorageAddress(int node) { return "storage" + std::to_string(node) + ":0"; }

  // Starts meta and kNodes storage servers; false (with a gtest failure) when one does not start.
  bool Start() {
    kv_ = meta::NewMemoryKv();
    cluster_ = std::make_unique<meta::ClusterManager>(kv_.get(), &clock_, creds_.cluster_id, 60000);
    store_ = std::make_unique<meta::MetaStore>(kv_.get(), [this] { return cluster_->PlacementChains(); });
    if (Status st = store_->Init(); !st.ok()) return Failed(st);
    meta_server_ = Server("meta:0");
    meta::RegisterMetaService(*meta_server_, *store_, *cluster_, meta_stats_);
    if (Status st = meta_server_->Start(); !st.ok()) return Failed(st);
    for (uint32_t node = 1; node <= kNodes; ++node) {
      chunks_.push_back(storage::NewMemoryChunkStore());
      auto n = StorageNode::Start(&transport_, StorageAddress(static_cast<int>(node)), creds_, node * 100 + 1,
                                  chunks_.back().get());
      if (!n.ok()) return Failed(n.status());
      storage_nodes_.push_back(std::move(n).value());
      proto::RegisterReq r;
      r.set_node_id(node);
      r.set_address(StorageAddress(static_cast<int>(node)));
      r.add_targets()->set_target_id(node * 100 + 1);
      if (auto reg = cluster_->Register(r); !reg.ok()) return Failed(reg.status());
    }
    return true;
  }

  client::ClientOptions Options() const {
    client::ClientOptions o;
    o.meta_address = "meta:0";
    o.cluster_id = creds_.cluster_id;
    o.cluster_key = creds_.key;
    return o;
  }
  std::unique_ptr<client::Client> Connect(const client::ClientOptions& o) {
    auto c = client::Client::Connect(o, &transport_);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  rpc::Faults& FaultsFor(int node) { return transport_.FaultsFor(StorageAddress(node)); }
  rpc::Faults& MetaFaults() { return transport_.FaultsFor("meta:0"); }
  const meta::MetaServiceStats& meta_stats() const { return meta_stats_; }
  meta::MetaStore& store() { return *store_; }
  storage::ChunkStore& chunks(int node) { return *chunks_[node - 1]; }

 private:
  std::unique_ptr<rpc::RpcServer> Server(const std::string& addr) {
    rpc::RpcServer::Options o;
    o.listen = addr;
    o.creds = creds_;
    return std::make_unique<rpc::RpcServer>(o, &transport_);
  }
  static bool Failed(const Status& st) {
    ADD_FAILURE() << st.ToString();
    return false;
  }

  const rpc::Credentials creds_{"inproc", "0123456789abcdef0123456789abcdef", 2000};
  rpc::InprocTransport transport_;
  ManualClock clock_;  // node leases never expire in these tests
  std::unique_ptr<meta::Kv> kv_;
  std::unique_ptr<meta::ClusterManager> cluster_;
  std::unique_ptr<meta::MetaStore> store_;
  meta::MetaServiceStats meta_stats_;
  std::unique_ptr<rpc::RpcServer> meta_server_;
  std::vector<std::unique_ptr<storage::ChunkStore>> chunks_;
  std::vector<std::unique_ptr<StorageNode>> storage_nodes_;
};

}  // namespace shoal::testing
