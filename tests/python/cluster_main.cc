// shoal-test-cluster: a LocalCluster (tests/integration/cluster.h) for tests
// written in other languages (tests/python/). It starts meta, the storage
// nodes and the FUSE mount in a fresh directory on fresh ports, writes a
// client.toml there, prints one line
//   ready dir=<dir> mount=<mount> config=<client.toml> meta=<host:port>
// (or "failed <why>" and exits 1), then obeys commands on standard input,
// one per line, answering each with "ok" or "error <why>":
//   kill-storage N     SIGKILL storage node N (1..3) and reap it
// At end of input (the test ended, or died) it unmounts and stops everything
// it started; its children also die with it (PR_SET_PDEATHSIG).
#include <csignal>
#include <fstream>
#include <iostream>
#include <string>

#include "common/log.h"
#include "tests/integration/cluster.h"

int main() {
  shoal::InitLogging("shoal-test-cluster", "warn");  // stdout carries the protocol
  shoal::testing::LocalCluster cluster;
  if (!cluster.Start(true)) {
    std::cout << "failed " << cluster.error() << std::endl;
    return 1;
  }
  std::string config = cluster.dir() + "/client.toml";
  std::ofstream(config) << "meta_address = '" << cluster.meta_address() << "'\ncluster_id = 'test'\n"
                        << "cluster_key_file = '" << cluster.key_file() << "'\nlog_level = 'error'\n";
  std::cout << "ready dir=" << cluster.dir() << " mount=" << cluster.mount() << " config=" << config
            << " meta=" << cluster.meta_address() << std::endl;
  std::string cmd;
  while (std::cin >> cmd) {
    if (cmd == "kill-storage") {
      int n = 0;
      std::cin >> n;
      if (n < 1 || n > shoal::testing::LocalCluster::kNodes) {
        std::cout << "error no storage node " << n << std::endl;
        continue;
      }
      cluster.Kill(cluster.storage_pid(n), SIGKILL);
      std::cout << "ok" << std::endl;
    } else {
      std::cout << "error unknown command " << cmd << std::endl;
    }
  }
  return 0;
}
