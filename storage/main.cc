// shoal-storage: serves the chunks of this node's targets.
#include <sys/resource.h>

#include <iostream>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
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
  ClusterConfig cluster;
  int64_t heartbeat_interval_ms = 1000;
  uint32_t worker_threads = 4;
  uint32_t ring_entries = 1024;
  uint32_t chunk_cache_entries = 16384;
  int64_t max_frame_bytes = 64 << 20;
  int64_t max_read_bytes = 32 << 20;
  std::string metrics_listen;
};

int Fail(const Status& st) { return ExitWithError("shoal-storage", st); }
}  // namespace

int main(int argc, char** argv) {
  StorageConfig cfg;
  ConfigSpec spec("shoal-storage", "Shoal chunk storage server");
  spec.Add("listen", &cfg.listen, "host:port to serve RPC on");
  spec.Add("advertise_address", &cfg.advertise_address, "host:port clients use to reach this node (default: listen)");
  spec.Add("meta_address", &cfg.meta_address, "host:port of shoal-meta");
  spec.Add("node_id", &cfg.node_id, "this node's id, unique in the cluster, > 0");
  spec.Add("targets", &cfg.targets, "targets as \"ID:PATH\", one directory on a local disk each");
  cfg.cluster.AddTo(spec);
  spec.Add("heartbeat_interval_ms", &cfg.heartbeat_interval_ms, "how often to heartbeat to meta");
  spec.Add("worker_threads", &cfg.worker_threads, "threads for writes, truncates and removes");
  spec.Add("ring_entries", &cfg.ring_entries, "io_uring submission queue size per target");
  spec.Add("chunk_cache_entries", &cfg.chunk_cache_entries, "open chunk files (with CRCs) cached per target");
  spec.Add("max_frame_bytes", &cfg.max_frame_bytes, "largest accepted RPC frame");
  spec.Add("max_read_bytes", &cfg.max_read_bytes, "largest batched read answered in one response");
  spec.Add("metrics_listen", &cfg.metrics_listen, "host:port for Prometheus metrics (GET /metrics); empty: off");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("storage", cfg.cluster.log_level);
  if (cfg.advertise_address.empty()) cfg.advertise_address = cfg.listen;

  BlockStopSignals();
  rlimit nofile;  // the chunk cache keeps files open
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  auto creds = cfg.cluster.Credentials();
  if (!creds.ok()) return Fail(creds.status());
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

  storage::StorageService service(by_id, cfg.max_read_bytes);
  rpc::RpcServer::Options opts;
  opts.listen = cfg.listen;
  opts.creds = *creds;
  opts.max_frame_bytes = cfg.max_frame_bytes;
  opts.worker_threads = static_cast<int>(cfg.worker_threads);
  opts.name = "storage";
  rpc::RpcServer server(opts, rpc::TcpTransport());
  service.Register(server);
  if (st = server.Start(); !st.ok()) return Fail(st);

  std::unique_ptr<MetricsServer> metrics;
  if (!cfg.metrics_listen.empty()) {
    metrics = std::make_unique<MetricsServer>(cfg.metrics_listen, [&] { return service.RenderMetrics(); });
    if (st = metrics->Start(); !st.ok()) return Fail(st);
  }

  rpc::RpcChannel meta({cfg.meta_address, *creds}, rpc::TcpTransport());
  storage::NodeAgent agent(&meta, cfg.node_id, cfg.advertise_address, *targets, [&] { return service.Stats(); },
                           cfg.heartbeat_interval_ms);
  agent.Start();
  LOG_INFO("shoal-storage node {} serving {} targets on {}", cfg.node_id, targets->size(), server.Address());

  LOG_INFO("signal {}: stopping", WaitForStopSignal());
  server.Stop();
  return 0;
}
