#include "client/cli/config_discovery.h"

#include <sys/stat.h>

#include <cstdlib>
#include <vector>

namespace shoal::cli {

Result<std::string> FindClientConfig(const ConfigSources& src, bool flags_suffice) {
  if (!src.flag.empty()) {
    if (!src.is_file(src.flag)) return Error(proto::NOT_FOUND, "--config " + src.flag + ": no such file");
    return src.flag;
  }
  std::vector<std::string> looked_at = {"--config (not given)"};
  const char* env = src.getenv("SHOAL_CONFIG");
  if (env != nullptr && *env != '\0') {
    // An explicit choice that is wrong is an error, not a reason to read some other cluster's config.
    if (!src.is_file(env)) return Error(proto::NOT_FOUND, std::string("SHOAL_CONFIG=") + env + ": no such file");
    return std::string(env);
  }
  looked_at.push_back("$SHOAL_CONFIG (not set)");
  std::vector<std::string> candidates;
  const char* home = src.getenv("SHOAL_HOME");
  if (home != nullptr && *home != '\0') candidates.push_back(std::string(home) + "/conf/client.toml");
  else looked_at.push_back("$SHOAL_HOME/conf/client.toml ($SHOAL_HOME not set)");
  candidates.push_back(kLocalClusterConfig);
  candidates.push_back(kInstalledConfig);
  for (const auto& c : candidates) {
    if (src.is_file(c)) return c;
    looked_at.push_back(c + " (absent)");
  }
  if (flags_suffice) return std::string();
  std::string msg = "no client config found; looked at:";
  for (const auto& l : looked_at) msg += "\n  " + l;
  msg += "\nstart a local cluster (deploy/local-cluster.sh up), or pass --config FILE, or set SHOAL_CONFIG";
  return Error(proto::NOT_FOUND, msg);
}

ConfigSources ProcessConfigSources(std::string flag) {
  ConfigSources s;
  s.flag = std::move(flag);
  s.getenv = [](const char* name) { return std::getenv(name); };
  s.is_file = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  };
  return s;
}

}  // namespace shoal::cli
