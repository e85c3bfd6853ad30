// shoal-fuse: mounts a Shoal cluster. Runs in the foreground until unmounted
// or signalled (SIGINT/SIGTERM unmount cleanly).
#include <csignal>
#include <iostream>

#include "client/fuse/fuse_ops.h"
#include "client/fuse/fuse_uring.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"
#include "common/rpc/handshake.h"

using namespace shoal;

namespace {
struct FuseConfig {
  std::string mountpoint;
  std::string meta_address = "127.0.0.1:9000";
  ClusterConfig cluster;
  std::string cache = "none";
  uint32_t threads = 4;
  uint32_t max_threads = 16;
  uint32_t max_read = 1u << 20;
  int64_t entry_timeout_ms = 1000;
  int64_t attr_timeout_ms = 1000;
  int64_t own_change_timeout_ms = 30000;
  int64_t io_timeout_ms = 10000;
  int64_t session_lease_ms = 30000;
  bool allow_other = true;
  std::string transport = "auto";
  int64_t event_loops = 1;
  fuse::UringOptions uring;
};

int Fail(const Status& st) { return ExitWithError("shoal-fuse", st); }
}  // namespace

int main(int argc, char** argv) {
  shoal::KeepLargeBuffersInHeap();
  FuseConfig cfg;
  ConfigSpec spec("shoal-fuse", "Mount a Shoal filesystem");
  spec.Add("mountpoint", &cfg.mountpoint, "directory to mount on");
  spec.Add("meta_address", &cfg.meta_address, "host:port of shoal-meta");
  cfg.cluster.AddTo(spec);
  spec.Add("cache", &cfg.cache, "client page cache: none (direct I/O) or page; O_DIRECT opens always bypass it");
  spec.Add("threads", &cfg.threads, "FUSE worker threads; reads do not hold one while in flight, so a few suffice (more cost context switches)");
  spec.Add("max_threads", &cfg.max_threads, "FUSE worker threads at most, while metadata calls block the others");
  spec.Add("max_read", &cfg.max_read, "largest FUSE read request in bytes (kernel cap: 1 MiB)");
  spec.Add("entry_timeout_ms", &cfg.entry_timeout_ms, "how long the kernel caches names");
  spec.Add("attr_timeout_ms", &cfg.attr_timeout_ms, "how long the kernel caches attributes");
  spec.Add("own_change_timeout_ms", &cfg.own_change_timeout_ms,
           "how long the kernel caches a name and its attributes that this mount itself just made (create, mkdir, "
           "symlink, link): it knows them first-hand, only another client's later change goes unseen that long");
  spec.Add("io_timeout_ms", &cfg.io_timeout_ms, "deadline of one storage RPC attempt");
  spec.Add("session_lease_ms", &cfg.session_lease_ms,
           "this mount's lease at meta, renewed every third of it: if the mount dies, files it held open are "
           "released (and unlinked ones reclaimed) this long after its last renewal");
  spec.Add("allow_other", &cfg.allow_other, "let users other than the mounter use the mount");
  spec.Add("transport", &cfg.transport, "tcp, rdma or auto (RDMA when a device is usable, else TCP)");
  spec.Add("uring", &cfg.uring.mode,
           "FUSE over io_uring (Linux 6.14+, fuse.enable_uring=Y): off, auto (when the kernel allows it) or on "
           "(fail the mount when it does not); faster reads, metadata calls at par");
  spec.Add("event_loops", &cfg.event_loops,
           "event-loop threads owning the storage connections; with FUSE over io_uring they also serve the kernel's "
           "request queues, starting reads and writes there and handing every other call to max_threads threads");
  spec.Add("uring_threads_per_queue", &cfg.uring.threads_per_queue,
           "event loops sharing each CPU's io_uring queue (its entries split among them)");
  spec.Add("uring_entries_per_queue", &cfg.uring.entries_per_queue,
           "requests each CPU's io_uring queue holds in flight, each with a buffer of the kernel's largest write "
           "(1 MiB), touched only as requests need it");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("fuse", cfg.cluster.log_level);
  if (cfg.mountpoint.empty()) return Fail(Error(proto::INVALID_ARGUMENT, "--mountpoint is required"));
  if (cfg.cache != "none" && cfg.cache != "page")
    return Fail(Error(proto::INVALID_ARGUMENT, "--cache must be none or page"));
  if (cfg.max_read == 0 || cfg.max_read > (1u << 20))
    return Fail(Error(proto::INVALID_ARGUMENT, "--max-read must be 1 to 1048576"));
  if (cfg.event_loops < 1 || cfg.event_loops > 256)
    return Fail(Error(proto::INVALID_ARGUMENT, "--event-loops must be 1 to 256"));

  cfg.uring.blocking_threads = std::max(cfg.threads, cfg.max_threads);
  if (char* real = realpath(cfg.mountpoint.c_str(), nullptr)) {  // before the mount: no request to ourselves
    cfg.uring.mountpoint = real;
    free(real);
  }
  st = fuse::FuseUring::Check(cfg.uring);
  if (!st.ok()) return Fail(st);

  auto creds = cfg.cluster.Credentials();
  if (!creds.ok()) return Fail(creds.status());
  client::ClientOptions co;
  co.meta_address = cfg.meta_address;
  co.cluster_id = creds->cluster_id;
  co.cluster_key = creds->key;
  co.io_timeout_ms = static_cast<int>(cfg.io_timeout_ms);
  co.transport = cfg.transport;
  co.session_lease_ms = static_cast<int>(cfg.session_lease_ms);
  // The kernel asks again for a directory it changed; the change's reply may
  // answer for as long as the kernel would have kept a copy itself.
  co.dir_attr_cache_ms = static_cast<int>(cfg.attr_timeout_ms);
  co.event_loops = static_cast<int>(cfg.event_loops);
  co.wide_sqes = cfg.uring.mode != "off";  // room for FUSE's ring commands
  auto cl = client::Client::Connect(co);
  if (!cl.ok()) return Fail(cl.status());
  cfg.uring.loops = (*cl)->Loops();

  fuse::FuseContext ctx;
  ctx.client = cl->get();
  ctx.options.page_cache = cfg.cache == "page";
  ctx.options.entry_timeout_s = cfg.entry_timeout_ms / 1000.0;
  ctx.options.attr_timeout_s = cfg.attr_timeout_ms / 1000.0;
  ctx.options.own_change_timeout_s = cfg.own_change_timeout_ms / 1000.0;
  ctx.options.max_read = cfg.max_read;

  std::vector<std::string> args = {"shoal-fuse", "-o", "fsname=shoal", "-o", "subtype=shoal", "-o",
                                   "max_read=" + std::to_string(cfg.max_read), "-o", "default_permissions"};
  if (cfg.allow_other) args.insert(args.end(), {"-o", "allow_other"});
  std::vector<char*> argvf;
  for (auto& a : args) argvf.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argvf.size()), argvf.data());
  fuse_session* se = fuse_session_new(&fargs, fuse::Operations(), sizeof(fuse_lowlevel_ops), &ctx);
  if (!se) return Fail(Error(proto::INTERNAL, "fuse_session_new failed"));
  if (fuse_set_signal_handlers(se) != 0) return Fail(Error(proto::INTERNAL, "cannot install signal handlers"));
  if (fuse_session_mount(se, cfg.mountpoint.c_str()) != 0)
    return Fail(Error(proto::INTERNAL, "cannot mount on " + cfg.mountpoint));
  auto uring = fuse::FuseUring::Attach(se, cfg.uring);
  if (!uring.ok()) {
    fuse_session_unmount(se);
    return Fail(uring.status());
  }
  ctx.uring = uring->get();
  LOG_INFO("mounted {} (meta {}, cache={})", cfg.mountpoint, cfg.meta_address, cfg.cache);

  fuse_loop_config* lc = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(lc, 1);
  // `threads` stay ready; when metadata calls block all of them (meta slow or
  // restarting), libfuse starts more up to max_threads so reads keep flowing.
  fuse_loop_cfg_set_idle_threads(lc, cfg.threads);
  fuse_loop_cfg_set_max_threads(lc, std::max(cfg.threads, cfg.max_threads));
  int rc = fuse_session_loop_mt(se, lc);
  fuse_loop_cfg_destroy(lc);
  fuse_session_unmount(se);
  // No handler may run from a ring once the Client is gone; the rings'
  // loops stop with it.
  if (*uring) {
    (*uring)->Stop();
    LOG_INFO("FUSE over io_uring served {} requests, {} of them straight on blocking-call threads", (*uring)->requests(),
             (*uring)->requests_on_blocking_rings());
  }
  cl->reset();  // completes outstanding reads and writes while the session still exists
  if (*uring && (*uring)->failed()) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return Fail(Error(proto::UNAVAILABLE, "uring = on, but the kernel would not serve this mount over io_uring"));
  }
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  LOG_INFO("unmounted {}", cfg.mountpoint);
  // libfuse's loop returns the signal that ended it: a clean stop too.
  return rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
}
