// shoal-meta: the metadata service and cluster manager.
#include <fstream>
#include <filesystem>
#include <iostream>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/rpc/channel_pool.h"
#include "common/rpc/server.h"
#include "meta/cluster_identity.h"
#include "meta/cluster_manager.h"
#include "meta/meta_service.h"
#include "meta/meta_store.h"
#include "meta/reclaimer.h"

using namespace shoal;

namespace {
struct MetaConfig {
  std::string listen = "127.0.0.1:9000";
  std::string data_dir = "/var/lib/shoal/meta";
  ClusterConfig cluster;
  int64_t heartbeat_timeout_ms = 10000;
  int64_t reclaim_interval_ms = 1000;
  int64_t reclaim_delay_ms = 30000;
  uint32_t max_session_lease_ms = 300000;
  // Handlers block in the group commit's WAL sync (meta_service.cc); every
  // operation waiting there shares one sync, so more threads, more sharing.
  uint32_t worker_threads = 64;
  int64_t max_frame_bytes = 64 << 20;
  std::string metrics_listen;
  RpcLimitsConfig rpc_limits;
};

int Fail(const Status& st) { return ExitWithError("shoal-meta", st); }
}  // namespace

namespace {
// Changes with every boot of the host (see MetaStore::set_host_boot_id).
std::string HostBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}
}  // namespace

int main(int argc, char** argv) {
  shoal::KeepLargeBuffersInHeap();
  MetaConfig cfg;
  ConfigSpec spec("shoal-meta", "Shoal metadata service and cluster manager");
  spec.Add("listen", &cfg.listen, "host:port to serve RPC on");
  spec.Add("data_dir", &cfg.data_dir, "RocksDB directory holding the namespace and cluster state");
  cfg.cluster.AddTo(spec);
  spec.Add("heartbeat_timeout_ms", &cfg.heartbeat_timeout_ms, "a storage node silent this long is marked offline");
  spec.Add("reclaim_interval_ms", &cfg.reclaim_interval_ms, "how often deleted files' chunks are freed");
  spec.Add("reclaim_delay_ms", &cfg.reclaim_delay_ms,
           "how long a deleted file's chunks are kept after its last close (a margin for readers by inode "
           "without an open, e.g. batch reads; open files are kept until closed regardless)");
  spec.Add("max_session_lease_ms", &cfg.max_session_lease_ms,
           "longest client session lease granted: a client that dies holding open files releases them this long "
           "after its last renewal at most (clients ask for their own, shorter lease)");
  spec.Add("worker_threads", &cfg.worker_threads, "threads serving metadata requests");
  spec.Add("max_frame_bytes", &cfg.max_frame_bytes, "largest accepted RPC frame");
  spec.Add("metrics_listen", &cfg.metrics_listen, "host:port for Prometheus metrics (GET /metrics); empty: off");
  cfg.rpc_limits.AddTo(spec);
  // A flag only, never a config key: a config file that says init would
  // start a fresh cluster over a lost database at the next start.
  bool init = false;
  spec.app().add_flag("--init", init,
                      "create a new cluster (a new cluster UUID) in an empty data_dir, then serve it; refused when "
                      "data_dir already holds a database. Without it a missing or empty database is refused.");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("meta", cfg.cluster.log_level);
  BlockStopSignals();
  auto creds = cfg.cluster.Credentials();
  if (!creds.ok()) return Fail(creds.status());
  auto kv = meta::OpenMetaDatabase(cfg.data_dir, init);
  if (!kv.ok()) return Fail(kv.status());
  auto cluster_uuid =
      init ? meta::InitClusterUuid(kv->get(), cfg.data_dir) : meta::LoadClusterUuid(kv->get(), cfg.data_dir);
  if (!cluster_uuid.ok()) return Fail(cluster_uuid.status());

  SteadyClock clock;
  meta::ClusterManager cluster(kv->get(), &clock, cfg.cluster.cluster_id, cfg.heartbeat_timeout_ms);
  if (st = cluster.Load(); !st.ok()) return Fail(st);
  meta::MetaStore store(kv->get(), [&cluster] { return cluster.PlacementChains(); }, &clock);
  store.set_max_lease_ms(cfg.max_session_lease_ms);
  store.set_host_boot_id(HostBootId());
  if (st = store.Init(); !st.ok()) return Fail(st);
  cluster.SetIdentity(*cluster_uuid, [&store] { return store.NextInode(); });

  rpc::RpcServer::Options opts;
  opts.listen = cfg.listen;
  opts.creds = *creds;
  opts.max_frame_bytes = cfg.max_frame_bytes;
  opts.worker_threads = static_cast<int>(cfg.worker_threads);
  if (st = cfg.rpc_limits.ApplyTo(&opts); !st.ok()) return Fail(st);
  opts.name = "meta";
  rpc::RpcServer server(opts, rpc::TcpTransport());
  meta::MetaServiceStats stats;
  meta::RegisterMetaService(server, store, cluster, stats);
  if (st = server.Start(); !st.ok()) return Fail(st);

  std::unique_ptr<MetricsServer> metrics;
  if (!cfg.metrics_listen.empty()) {
    metrics = std::make_unique<MetricsServer>(cfg.metrics_listen,
                                              [&] { return meta::RenderMetaMetrics(store, cluster, stats); });
    if (st = metrics->Start(); !st.ok()) return Fail(st);
  }

  rpc::ChannelPool channels(*creds, rpc::TcpTransport());
  meta::Reclaimer reclaimer(&store, &cluster, &channels, cfg.reclaim_interval_ms, cfg.reclaim_delay_ms, &clock);
  reclaimer.Start();

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::thread liveness([&] {
    std::unique_lock<std::mutex> l(stop_mu);
    int64_t period_ms = std::max<int64_t>(cfg.heartbeat_timeout_ms / 4, 50);
    while (!clock.WaitUntil(stop_cv, l, clock.NowMs() + period_ms, [&] { return stopping; })) {
      Status s = cluster.CheckLiveness();
      if (!s.ok()) LOG_WARN("liveness check: {}", s.ToString());
    }
  });
  LOG_INFO("shoal-meta serving cluster {} on {} (data in {})", *cluster_uuid, server.Address(), cfg.data_dir);

  LOG_INFO("signal {}: stopping", WaitForStopSignal());
  {
    std::lock_guard<std::mutex> l(stop_mu);
    stopping = true;
  }
  stop_cv.notify_all();
  server.Stop();
  liveness.join();
  return 0;
}
