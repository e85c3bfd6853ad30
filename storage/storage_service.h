// StorageService: the RPC face of shoal-storage over its targets' chunk stores.
//
// STORAGE_READ runs inline on the connection's reader: it only starts the
// reads; the reply (results + the bytes of every OK item as payload) is sent
// from the store's completion. Writes, truncates and removes block on the disk
// and run on the worker pool. Requests name targets by id; an unknown target
// fails that item (or call) with NOT_FOUND. Writes pass the WriteLedger, so a
// retried write lands once and an overtaken attempt not at all.
#pragma once

#include <map>

#include "common/metrics.h"
#include "common/rpc/server.h"
#include "proto/cluster.pb.h"
#include "storage/chunk_store.h"
#include "storage/write_ledger.h"

namespace shoal::storage {

class StorageService {
 public:
  // `targets` maps target id to its store; the stores outlive the service.
  StorageService(std::map<uint32_t, ChunkStore*> targets, uint64_t max_read_bytes);

  void Register(rpc::RpcServer& server);
  proto::NodeStats Stats() const;
  // Prometheus text: per-target counters, reads in flight, read latency.
  std::string RenderMetrics() const;
  // Write attempts refused because a newer write of their lane had landed.
  uint64_t superseded_writes() const { return ledger_.superseded(); }

 private:
  void HandleRead(std::shared_ptr<rpc::ServerCall> call);
  void HandleWrite(std::shared_ptr<rpc::ServerCall> call);
  ChunkStore* Find(uint32_t target_id) const;

  std::map<uint32_t, ChunkStore*> targets_;
  uint64_t max_read_bytes_;
  std::atomic<int64_t> reads_in_flight_{0};
  Histogram read_latency_;  // request arrival to reply
  WriteLedger ledger_;
};

}  // namespace shoal::storage
