// shoal-meta: the metadata service and cluster manager.
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "common/config.h"
#include "common/log.h"
#include "common/rpc/channel_pool.h"
#include "common/rpc/server.h"
#include "meta/cluster_manager.h"
#include "meta/meta_service.h"
#include "meta/meta_store.h"
#include "meta/reclaimer.h"

using namespace shoal;

namespace {
struct MetaConfig {
  std::string listen = "127.0.0.1:9000";
  std::string data_dir = "/var/lib/shoal/meta";
  std::string cluster_id = "shoal";
  std::string cluster_key_file = "/etc/shoal/cluster.key";
  int64_t heartbeat_timeout_ms = 10000;
  int64_t reclaim_interval_ms = 1000;
  uint32_t worker_threads = 8;
  int64_t max_frame_bytes = 64 << 20;
  std::string log_level = "info";
};

int Fail(const Status& st) {
  std::cerr << "shoal-meta: " << st.ToString() << "\n";
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  MetaConfig cfg;
  ConfigSpec spec("shoal-meta", "Shoal metadata service and cluster manager");
  spec.Add("listen", &cfg.listen, "host:port to serve RPC on");
  spec.Add("data_dir", &cfg.data_dir, "RocksDB directory holding the namespace and cluster state");
  spec.Add("cluster_id", &cfg.cluster_id, "cluster name every peer must present in the handshake");
  spec.Add("cluster_key_file", &cfg.cluster_key_file, "file with the shared cluster key (hex)");
  spec.Add("heartbeat_timeout_ms", &cfg.heartbeat_timeout_ms, "a storage node silent this long is marked offline");
  spec.Add("reclaim_interval_ms", &cfg.reclaim_interval_ms, "how often deleted files' chunks are freed");
  spec.Add("worker_threads", &cfg.worker_threads, "threads serving metadata requests");
  spec.Add("max_frame_bytes", &cfg.max_frame_bytes, "largest accepted RPC frame");
  spec.Add("log_level", &cfg.log_level, "trace, debug, info, warn or error");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("meta", cfg.log_level);

  // Block the stop signals before any thread starts, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto key = rpc::LoadClusterKey(cfg.cluster_key_file);
  if (!key.ok()) return Fail(key.status());
  std::error_code ec;
  std::filesystem::create_directories(cfg.data_dir, ec);
  auto kv = meta::OpenRocksKv(cfg.data_dir);
  if (!kv.ok()) return Fail(kv.status());

  SteadyClock clock;
  meta::ClusterManager cluster(kv->get(), &clock, cfg.cluster_id, cfg.heartbeat_timeout_ms);
  if (st = cluster.Load(); !st.ok()) return Fail(st);
  meta::MetaStore store(kv->get(), [&cluster] { return cluster.PlacementChains(); });
  if (st = store.Init(); !st.ok()) return Fail(st);

  rpc::Credentials creds{cfg.cluster_id, *key, 5000};
  rpc::RpcServer::Options opts;
  opts.listen = cfg.listen;
  opts.creds = creds;
  opts.max_frame_bytes = cfg.max_frame_bytes;
  opts.worker_threads = static_cast<int>(cfg.worker_threads);
  opts.name = "meta";
  rpc::RpcServer server(opts, rpc::TcpTransport());
  meta::RegisterMetaService(server, store, cluster);
  if (st = server.Start(); !st.ok()) return Fail(st);

  rpc::ChannelPool channels(creds, rpc::TcpTransport());
  meta::Reclaimer reclaimer(&store, &cluster, &channels, cfg.reclaim_interval_ms);
  reclaimer.Start();

  std::atomic<bool> stopping{false};
  std::thread liveness([&] {
    while (!stopping) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(cfg.heartbeat_timeout_ms / 4, 50)));
      Status s = cluster.CheckLiveness();
      if (!s.ok()) LOG_WARN("liveness check: {}", s.ToString());
    }
  });
  LOG_INFO("shoal-meta serving {} (data in {})", server.Address(), cfg.data_dir);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("signal {}: stopping", sig);
  stopping = true;
  server.Stop();
  liveness.join();
  return 0;
}
