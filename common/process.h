// What every Shoal program shares at startup: the cluster identity keys of
// its config, stop-signal handling, and how a fatal error ends it.
#pragma once

#include <string>

#include "common/config.h"
#include "common/rpc/handshake.h"
#include "common/rpc/server.h"

namespace shoal {

struct ClusterConfig {
  std::string cluster_id = "shoal";
  std::string cluster_key_file = "/etc/shoal/cluster.key";
  std::string log_level = "info";

  void AddTo(ConfigSpec& spec);
  // Loads the key: credentials for the handshake.
  Result<rpc::Credentials> Credentials() const;
};

// The RPC server's protection against bad or slow peers, as config keys
// (defaults: rpc::RpcServer::Options; meaning: rpc/server.h).
struct RpcLimitsConfig {
  int64_t max_connections;
  int64_t handshake_timeout_ms;
  int64_t frame_read_timeout_ms;
  int64_t send_timeout_ms;
  uint32_t max_requests_in_flight;
  int64_t max_bytes_in_flight;
  uint32_t max_items_per_request;

  RpcLimitsConfig();
  void AddTo(ConfigSpec& spec);
  // INVALID_ARGUMENT when a value is below 1 or too large.
  Status ApplyTo(rpc::RpcServer::Options* options) const;
};

// Keeps freed request buffers (reads and writes up to a chunk, 1 MiB by
// default) in the heap for reuse instead of mapping and unmapping each one.
// A fresh mapping faults in every page again on first touch; on this VM (its
// guest page tables are shadowed) that cost ~4 ms of CPU per 1 MiB read and
// held 1 MiB reads to a third of the disk. Call at the start of main().
void KeepLargeBuffersInHeap();

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later, so that only WaitForStopSignal() sees them. Call before any thread.
void BlockStopSignals();
int WaitForStopSignal();

// Prints "program: status" to stderr; returns the exit code 1.
int ExitWithError(const char* program, const Status& st);

}  // namespace shoal
