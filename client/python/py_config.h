// How the Python module finds and reads its client config: the same file the
// `shoal` CLI would read (client/cli/config_discovery.h: the given path, else
// $SHOAL_CONFIG, else $SHOAL_HOME/conf/client.toml, else the local cluster's
// /var/tmp/shoal-local/conf/client.toml, else /etc/shoal/client.toml), with
// the same keys (meta_address, cluster_id, cluster_key_file, log_level) plus
// optional client tuning keys (meta_timeout_ms, io_timeout_ms, io_attempts,
// event_loops). Errors: NOT_FOUND naming every place looked at,
// INVALID_ARGUMENT for a bad file, and the key file's own errors.
#pragma once

#include <string>

#include "client/client.h"
#include "common/status.h"

namespace shoal::python {

struct LoadedConfig {
  std::string path;  // the file read
  client::ClientOptions options;
};

// `config`: a path, or "" to search.
Result<LoadedConfig> LoadClientConfig(const std::string& config);

}  // namespace shoal::python
