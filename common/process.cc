#include "common/process.h"

#include <signal.h>

#include <iostream>

namespace shoal {

void ClusterConfig::AddTo(ConfigSpec& spec) {
  spec.Add("cluster_id", &cluster_id, "cluster name every peer must present in the handshake");
  spec.Add("cluster_key_file", &cluster_key_file, "file with the shared cluster key (hex)");
  spec.Add("log_level", &log_level, "trace, debug, info, warn or error");
}

Result<rpc::Credentials> ClusterConfig::Credentials() const {
  ASSIGN_OR_RETURN(std::string key, rpc::LoadClusterKey(cluster_key_file));
  return rpc::Credentials{cluster_id, key, 5000};
}

namespace {
sigset_t StopSignals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  return s;
}
}  // namespace

void BlockStopSignals() {
  sigset_t s = StopSignals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int WaitForStopSignal() {
  sigset_t s = StopSignals();
  int sig = 0;
  sigwait(&s, &sig);
  return sig;
}

int ExitWithError(const char* program, const Status& st) {
  std::cerr << program << ": " << st.ToString() << "\n";
  return 1;
}

}  // namespace shoal
