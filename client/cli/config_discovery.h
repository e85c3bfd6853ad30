// Which client config file `shoal` reads, the first of:
//
//   1. --config FILE                      (given: it must exist)
//   2. $SHOAL_CONFIG                      (set: it must exist)
//   3. $SHOAL_HOME/conf/client.toml       (SHOAL_HOME set: a local cluster's state directory)
//   4. /var/tmp/shoal-local/conf/client.toml   (deploy/local-cluster.sh's default home)
//   5. /etc/shoal/client.toml             (an installed cluster)
//
// Steps 3-5 are looked at only when they exist. When none does, the answer is
// "" if the caller may go on without a file (every setting given as a flag),
// else NOT_FOUND with a message naming every place looked at.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"

namespace shoal::cli {

struct ConfigSources {
  std::string flag;                                    // --config, "" when not given
  std::function<const char*(const char*)> getenv;      // e.g. ::getenv
  std::function<bool(const std::string&)> is_file;     // exists and is a regular file
};

inline constexpr const char* kLocalClusterConfig = "/var/tmp/shoal-local/conf/client.toml";
inline constexpr const char* kInstalledConfig = "/etc/shoal/client.toml";

// `flags_suffice`: the command line named the cluster itself (--meta-address).
Result<std::string> FindClientConfig(const ConfigSources& sources, bool flags_suffice);

// ConfigSources for this process (real environment, real files).
ConfigSources ProcessConfigSources(std::string flag);

}  // namespace shoal::cli
