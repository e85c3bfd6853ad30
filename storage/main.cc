// shoal-storage: serves the chunks of this node's targets.
#include <signal.h>
#include <sys/resource.h>

#include <iostream>

#include "common/config.h"
#include "common/log.h"
#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "storage/chunk_store.h"
#include "storage/node_agent.h"
#include "storage/storage_service.h"

using namespace shoal;

namespace {
struct StorageConfig {
  std::string listen = "127.0.0.1:9100";
  std::string advertise_address;  // default: listen
  std::string meta_address = "127.0.0.1:9000";
  uint32_t node_id = 1;
  std::vector<std::string> targets;
  std::string cluster_id = "shoal";
  std::string cluster_key_file = "/etc/shoal/cluster.key";
  int64_t heartbeat_interval_ms = 1000;
  uint32_t worker_threads = 4;
  uint32_t ring_entries = 1024;
  uint32_t chunk_cache_entries = 16384;
  int64_t max_frame_bytes = 64 << 20;
  int64_t max_read_bytes = 32 << 20;
  std::string log_level = "info";
};

int Fail(const Status& st) {
  std::cerr << "shoal-storage: " << st.ToString() << "\n";
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  StorageConfig cfg;
  ConfigSpec spec("shoal-storage", "Shoal chunk storage server");
  spec.Add("listen", &cfg.listen, "host:port to serve RPC on");
  spec.Add("advertise_address", &cfg.advertise_address, "host:port clients use to reach this node (default: listen)");
  spec.Add("meta_address", &cfg.meta_address, "host:port of shoal-meta");
  spec.Add("node_id", &cfg.node_id, "this node's id, unique in the cluster, > 0");
  spec.Add("targets", &cfg.targets, "targets as \"ID:PATH\", one directory on a local disk each");
  spec.Add("cluster_id", &cfg.cluster_id, "cluster name every peer must present in the handshake");
  spec.Add("cluster_key_file", &cfg.cluster_key_file, "file with the shared cluster key (hex)");
  spec.Add("heartbeat_interval_ms", &cfg.heartbeat_interval_ms, "how often to heartbeat to meta");
  spec.Add("worker_threads", &cfg.worker_threads, "threads for writes, truncates and removes");
  spec.Add("ring_entries", &cfg.ring_entries, "io_uring submission queue size per target");
  spec.Add("chunk_cache_entries", &cfg.chunk_cache_entries, "open chunk files (with CRCs) cached per target");
  spec.Add("max_frame_bytes", &cfg.max_frame_bytes, "largest accepted RPC frame");
  spec.Add("max_read_bytes", &cfg.max_read_bytes, "largest batched read answered in one response");
  spec.Add("log_level", &cfg.log_level, "trace, debug, info, warn or error");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("storage", cfg.log_level);
  if (cfg.advertise_address.empty()) cfg.advertise_address = cfg.listen;

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  rlimit nofile;  // the chunk cache keeps files open
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  auto key = rpc::LoadClusterKey(cfg.cluster_key_file);
  if (!key.ok()) return Fail(key.status());
  auto targets = storage::ParseTargets(cfg.targets);
  if (!targets.ok()) return Fail(targets.status());
  std::vector<std::unique_ptr<storage::ChunkStore>> stores;
  std::map<uint32_t, storage::ChunkStore*> by_id;
  for (const auto& t : *targets) {
    if (st = storage::ClaimTargetDir(t); !st.ok()) return Fail(st);
    storage::UringOptions uo;
    uo.ring_entries = cfg.ring_entries;
    uo.cache_entries = cfg.chunk_cache_entries;
    auto store = storage::OpenUringChunkStore(t.path, uo);
    if (!store.ok()) return Fail(store.status());
    by_id[t.id] = store->get();
    stores.push_back(std::move(store).value());
  }

  rpc::Credentials creds{cfg.cluster_id, *key, 5000};
  storage::StorageService service(by_id, cfg.max_read_bytes);
  rpc::RpcServer::Options opts;
  opts.listen = cfg.listen;
  opts.creds = creds;
  opts.max_frame_bytes = cfg.max_frame_bytes;
  opts.worker_threads = static_cast<int>(cfg.worker_threads);
  opts.name = "storage";
  rpc::RpcServer server(opts, rpc::TcpTransport());
  service.Register(server);
  if (st = server.Start(); !st.ok()) return Fail(st);

  rpc::RpcChannel meta({cfg.meta_address, creds}, rpc::TcpTransport());
  storage::NodeAgent agent(&meta, cfg.node_id, cfg.advertise_address, *targets, [&] { return service.Stats(); },
                           cfg.heartbeat_interval_ms);
  agent.Start();
  LOG_INFO("shoal-storage node {} serving {} targets on {}", cfg.node_id, targets->size(), server.Address());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("signal {}: stopping", sig);
  server.Stop();
  return 0;
}
