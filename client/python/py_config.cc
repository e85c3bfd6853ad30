#include "client/python/py_config.h"

#include <mutex>
#include <vector>

#include "client/cli/config_discovery.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"

namespace shoal::python {

Result<LoadedConfig> LoadClientConfig(const std::string& config) {
  LoadedConfig out;
  ASSIGN_OR_RETURN(out.path, cli::FindClientConfig(cli::ProcessConfigSources(config), false));
  std::string meta_address = out.options.meta_address;
  ClusterConfig cluster;
  cluster.log_level = "warn";
  int64_t meta_timeout_ms = out.options.meta_timeout_ms, io_timeout_ms = out.options.io_timeout_ms;
  int64_t io_attempts = out.options.io_attempts, event_loops = out.options.event_loops;
  ConfigSpec spec("shoal-python", "Shoal Python client");
  spec.Add("meta_address", &meta_address, "host:port of shoal-meta");
  cluster.AddTo(spec);
  spec.Add("meta_timeout_ms", &meta_timeout_ms, "deadline of one metadata call");
  spec.Add("io_timeout_ms", &io_timeout_ms, "deadline of one storage RPC attempt");
  spec.Add("io_attempts", &io_attempts, "tries per storage request before it fails");
  spec.Add("event_loops", &event_loops, "client threads owning the storage connections");
  // ConfigSpec reads files through its command line: hand it one naming the file.
  std::vector<std::string> args = {"shoal-python", "--config", out.path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  bool exit_now = false;
  RETURN_IF_ERROR(spec.Parse(static_cast<int>(argv.size()), argv.data(), &exit_now));
  // Log lines go to stderr (never the program's stdout), at the first config's level.
  static std::once_flag logging;
  std::call_once(logging, [&] { InitLogging("shoal-python", cluster.log_level); });
  ASSIGN_OR_RETURN(auto creds, cluster.Credentials());
  if (meta_timeout_ms < 1 || io_timeout_ms < 1 || io_attempts < 1 || event_loops < 1)
    return Error(proto::INVALID_ARGUMENT, out.path + ": timeouts, io_attempts and event_loops must be at least 1");
  out.options.meta_address = meta_address;
  out.options.cluster_id = creds.cluster_id;
  out.options.cluster_key = creds.key;
  out.options.meta_timeout_ms = static_cast<int>(meta_timeout_ms);
  out.options.io_timeout_ms = static_cast<int>(io_timeout_ms);
  out.options.io_attempts = static_cast<int>(io_attempts);
  out.options.event_loops = static_cast<int>(event_loops);
  return out;
}

}  // namespace shoal::python
