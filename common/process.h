// What every Shoal program shares at startup: the cluster identity keys of
// its config, stop-signal handling, and how a fatal error ends it.
#pragma once

#include <string>

#include "common/config.h"
#include "common/rpc/handshake.h"

namespace shoal {

struct ClusterConfig {
  std::string cluster_id = "shoal";
  std::string cluster_key_file = "/etc/shoal/cluster.key";
  std::string log_level = "info";

  void AddTo(ConfigSpec& spec);
  // Loads the key: credentials for the handshake.
  Result<rpc::Credentials> Credentials() const;
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later, so that only WaitForStopSignal() sees them. Call before any thread.
void BlockStopSignals();
int WaitForStopSignal();

// Prints "program: status" to stderr; returns the exit code 1.
int ExitWithError(const char* program, const Status& st);

}  // namespace shoal
