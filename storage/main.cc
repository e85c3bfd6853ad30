// shoal-storage: serves the chunks of this node's targets.
#include <signal.h>
#include <sys/resource.h>

#include <iostream>
#include <thread>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/rpc/client.h"
#include "common/loop/event_loop.h"
#include "common/rpc/loop_server.h"
#include "storage/chunk_store.h"
#include "storage/node_agent.h"
#include "storage/storage_service.h"
#include "storage/target_claim.h"

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
  uint32_t open_threads = 2;
  uint32_t read_slab_slots = 1024;
  uint32_t read_slab_large_slots = 16;
  uint32_t event_loops = 0;  // 0: one per core
  int64_t max_connections = 4096;
  int64_t max_requests_in_flight = 1024;  // per connection
  int64_t max_bytes_in_flight = 256 << 20;  // per connection
  int64_t max_read_items = 16384;
  int64_t handshake_timeout_ms = 5000;
  int64_t frame_read_timeout_ms = 30000;
  int64_t send_timeout_ms = 60000;
  uint32_t ring_entries = 1024;
  uint32_t chunk_cache_entries = 16384;
  uint32_t journal_mib = 64;
  uint32_t journal_max_chunk_kib = 256;
  int64_t journal_apply_delay_ms = 20;
  int64_t max_frame_bytes = 64 << 20;
  int64_t max_read_bytes = 32 << 20;
  std::string metrics_listen;
};

int Fail(const Status& st) { return ExitWithError("shoal-storage", st); }

// Waits up to `ms` for SIGTERM/SIGINT (blocked in every thread); true when one came.
bool StopSignalWithin(int64_t ms) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000};
  return sigtimedwait(&s, nullptr, &ts) > 0;
}

// Identity before serving: meta's answer (the cluster UUID, what was lost)
// decides which targets may be served. Waits for meta as long as it takes; a
// refusal (or a stop signal) ends the start.
Result<proto::RegisterRsp> IdentifyBeforeServing(storage::NodeAgent& agent, const std::string& meta_address) {
  bool warned = false;
  for (;;) {
    auto rsp = agent.Identify();
    if (rsp.ok()) return rsp;
    auto code = rsp.status().code();
    if (code == proto::INVALID_ARGUMENT || code == proto::AUTH_FAILED || code == proto::PROTOCOL_ERROR)
      return Error(code, "meta at " + meta_address + " refused this node: " + rsp.status().message());
    if (!warned) LOG_WARN("waiting for meta at {}: {}", meta_address, rsp.status().ToString());
    warned = true;
    if (StopSignalWithin(1000)) return Error(proto::CANCELLED, "stopped while waiting for meta at " + meta_address);
  }
}
}  // namespace

int main(int argc, char** argv) {
  shoal::KeepLargeBuffersInHeap();
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
  spec.Add("open_threads", &cfg.open_threads, "threads that open chunk files not in the open-file cache");
  spec.Add("read_slab_slots", &cfg.read_slab_slots,
           "16 KiB read buffers per event loop, registered with its ring (small reads skip the heap; 0: none)");
  spec.Add("read_slab_large_slots", &cfg.read_slab_large_slots,
           "1 MiB read buffers per event loop, registered likewise, for reads above 16 KiB (0: none)");
  spec.Add("event_loops", &cfg.event_loops,
           "event-loop threads serving connections and their disk reads (0: one per core)");
  spec.Add("ring_entries", &cfg.ring_entries, "io_uring submission queue size per event loop and per target");
  spec.Add("max_connections", &cfg.max_connections, "connections served at once; more are refused");
  spec.Add("max_requests_in_flight", &cfg.max_requests_in_flight,
           "requests per connection being served before the server stops reading it");
  spec.Add("max_bytes_in_flight", &cfg.max_bytes_in_flight,
           "request payload plus unsent reply bytes per connection before the server stops reading it");
  spec.Add("max_read_items", &cfg.max_read_items, "most chunk pieces in one batched read");
  spec.Add("handshake_timeout_ms", &cfg.handshake_timeout_ms, "a connection's whole handshake must end within this");
  spec.Add("frame_read_timeout_ms", &cfg.frame_read_timeout_ms,
           "a request frame must arrive whole within this of its first byte");
  spec.Add("send_timeout_ms", &cfg.send_timeout_ms, "a peer that takes none of its replies this long is dropped");
  spec.Add("chunk_cache_entries", &cfg.chunk_cache_entries, "open chunk files (with CRCs) cached per target");
  spec.Add("journal_mib", &cfg.journal_mib,
           "size of each target's write journal, which acknowledges new small chunks with one shared sync (0: none; "
           "fixed when the journal is made)");
  spec.Add("journal_max_chunk_kib", &cfg.journal_max_chunk_kib,
           "chunks up to this size may be journaled; larger ones are written to their files at once");
  spec.Add("journal_apply_delay_ms", &cfg.journal_apply_delay_ms,
           "how long a journaled chunk waits before it is written to its file (one syncfs covers every chunk "
           "written in a pass)");
  spec.Add("max_frame_bytes", &cfg.max_frame_bytes, "largest accepted RPC frame");
  spec.Add("max_read_bytes", &cfg.max_read_bytes, "largest batched read answered in one response");
  spec.Add("metrics_listen", &cfg.metrics_listen, "host:port for Prometheus metrics (GET /metrics); empty: off");
  // Flags only, never config keys: a config file that says format would
  // format a lost disk at the next start without anyone asking.
  storage::FormatRequest format;
  std::vector<uint32_t> reformat;
  spec.app().add_flag("--format", format.format_empty,
                      "format the configured targets that are unstamped and empty (new disks); stamped ones are "
                      "left alone");
  spec.app().add_option("--format-target", reformat,
                        "wipe and format target ID whatever it holds (a swapped or foreign disk); repeatable");
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
  for (uint32_t id : reformat) {
    bool configured = false;
    for (const auto& t : *targets) configured |= t.id == id;
    if (!configured) {
      return Fail(
          Error(proto::INVALID_ARGUMENT, "--format-target=" + std::to_string(id) + ": no such target configured"));
    }
    format.reformat.insert(id);
  }

  // Identity first: no target is served before its stamp is checked against
  // meta's cluster and meta has said what it lost.
  storage::FileEnv* env = storage::RealFileEnv();
  std::vector<storage::TargetClaim> claims;
  for (const auto& t : *targets) {
    auto claim = storage::ClaimTarget(env, t, format);
    if (!claim.ok()) return Fail(claim.status());
    claims.push_back(std::move(claim).value());
  }
  rpc::RpcChannel meta({cfg.meta_address, *creds}, rpc::TcpTransport());
  std::function<proto::NodeStats()> node_stats;  // set once the service exists
  // Stopped (reset) before the service its stats come from is destroyed.
  auto agent = std::make_unique<storage::NodeAgent>(&meta, cfg.node_id, cfg.advertise_address, *targets,
                                                    [&] { return node_stats(); }, cfg.heartbeat_interval_ms);
  for (const auto& c : claims)
    agent->SetTargetStamp(c.config.id, c.stamp ? c.stamp->cluster_uuid : "", c.incarnation);
  auto identity = IdentifyBeforeServing(*agent, cfg.meta_address);
  if (identity.status().code() == proto::CANCELLED) {
    LOG_INFO("{}", identity.status().message());
    return 0;  // asked to stop: not a failure
  }
  if (!identity.ok()) return Fail(identity.status());

  std::vector<std::unique_ptr<storage::ChunkStore>> stores;
  std::map<uint32_t, storage::ChunkStore*> by_id;
  for (auto& c : claims) {
    uint64_t lost_below = 0;
    for (const auto& v : identity->targets())
      if (v.target_id() == c.config.id) lost_below = v.lost_below_inode();
    auto stamp = storage::SettleTarget(env, c, identity->cluster_uuid(), lost_below);
    if (!stamp.ok()) return Fail(stamp.status());
    agent->SetTargetStamp(c.config.id, stamp->cluster_uuid, stamp->incarnation);
    storage::UringOptions uo;
    uo.ring_entries = cfg.ring_entries;
    uo.cache_entries = cfg.chunk_cache_entries;
    uo.journal_bytes = uint64_t{cfg.journal_mib} << 20;
    uo.journal_max_chunk_bytes = cfg.journal_max_chunk_kib << 10;
    uo.journal_apply_delay_ms = cfg.journal_apply_delay_ms;
    auto store = storage::OpenUringChunkStore(c.config.path, uo);
    if (!store.ok()) return Fail(store.status());
    // Chunks of older inodes may have been on a disk this one replaced: a
    // missing one is lost data (EIO), not a hole of zeros.
    (*store)->SetLostBelow(stamp->lost_below_inode);
    by_id[c.config.id] = store->get();
    stores.push_back(std::move(store).value());
  }

  unsigned nloops = cfg.event_loops ? cfg.event_loops : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<loop::EventLoop>> loops;
  std::vector<loop::EventLoop*> loop_ptrs;
  for (unsigned i = 0; i < nloops; ++i) {
    loop::EventLoop::Options lo;
    lo.name = "storage-loop-" + std::to_string(i);
    lo.ring_entries = cfg.ring_entries;
    auto l = loop::EventLoop::Start(lo);
    if (!l.ok()) return Fail(l.status());
    loop_ptrs.push_back(l->get());
    loops.push_back(std::move(l).value());
  }
  storage::StorageService::Options so;
  so.max_read_bytes = cfg.max_read_bytes;
  so.max_read_items = static_cast<uint32_t>(cfg.max_read_items);
  so.worker_threads = static_cast<int>(cfg.worker_threads);
  so.open_threads = static_cast<int>(cfg.open_threads);
  so.read_slab_slots = cfg.read_slab_slots;
  so.read_slab_large_slots = cfg.read_slab_large_slots;
  storage::StorageService service(by_id, loop_ptrs, so);
  node_stats = [&service] { return service.Stats(); };
  rpc::LoopServer::Options opts;
  opts.listen = cfg.listen;
  opts.creds = *creds;
  opts.max_frame_bytes = cfg.max_frame_bytes;
  opts.name = "storage";
  opts.max_connections = static_cast<int>(cfg.max_connections);
  opts.max_requests_in_flight = static_cast<uint32_t>(cfg.max_requests_in_flight);
  opts.max_bytes_in_flight = static_cast<uint64_t>(cfg.max_bytes_in_flight);
  opts.handshake_timeout_ms = static_cast<int>(cfg.handshake_timeout_ms);
  opts.frame_read_timeout_ms = static_cast<int>(cfg.frame_read_timeout_ms);
  opts.send_timeout_ms = static_cast<int>(cfg.send_timeout_ms);
  rpc::LoopServer server(opts, rpc::TcpTransport(), loop_ptrs);
  service.Register(server);
  if (st = server.Start(); !st.ok()) return Fail(st);

  std::unique_ptr<MetricsServer> metrics;
  if (!cfg.metrics_listen.empty()) {
    metrics = std::make_unique<MetricsServer>(cfg.metrics_listen, [&] { return service.RenderMetrics(); });
    if (st = metrics->Start(); !st.ok()) return Fail(st);
  }

  agent->Start();
  LOG_INFO("shoal-storage node {} serving {} targets of cluster {} on {}", cfg.node_id, targets->size(),
           identity->cluster_uuid(), server.Address());

  LOG_INFO("signal {}: stopping", WaitForStopSignal());
  agent.reset();
  server.Stop();
  return 0;
}
