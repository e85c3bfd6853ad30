// shoal: the command line. Cluster status, listing, striped parallel put/get,
// a file's chunk placement, and directory layouts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>

#include "client/client.h"
#include "common/aligned_buffer.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"
#include "common/rpc/handshake.h"

using namespace shoal;
using client::Client;

namespace {

int Fail(const Status& st) { return ExitWithError("shoal", st); }

Result<uint32_t> ParseSize(const std::string& s) {
  char* end = nullptr;
  double v = strtod(s.c_str(), &end);
  std::string unit(end);
  uint64_t mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1 << 10;
  else if (unit == "M" || unit == "m" || unit == "MiB") mult = 1 << 20;
  else if (unit == "G" || unit == "g" || unit == "GiB") mult = 1 << 30;
  else if (!unit.empty()) return Error(proto::INVALID_ARGUMENT, "bad size '" + s + "'");
  double bytes = v * mult;
  if (end == s.c_str() || bytes < 0 || bytes > 4294967295.0) return Error(proto::INVALID_ARGUMENT, "bad size '" + s + "'");
  return static_cast<uint32_t>(bytes);
}

const char* TypeName(proto::FileType t) {
  return t == proto::DIRECTORY ? "dir" : t == proto::SYMLINK ? "link" : "file";
}

int Status_(Client& c) {
  auto t = c.ClusterTable(true);
  if (!t.ok()) return Fail(t.status());
  std::printf("cluster %s, table version %lu\n", t->cluster_id().c_str(), t->version());
  std::printf("nodes:\n");
  for (const auto& n : t->nodes())
    std::printf("  node %u  %-21s %-8s reads=%lu read_bytes=%lu writes=%lu checksum_errors=%lu io_errors=%lu\n",
                n.node_id(), n.address().c_str(), n.state() == proto::NODE_ONLINE ? "online" : "offline",
                n.stats().reads(), n.stats().read_bytes(), n.stats().writes(), n.stats().checksum_errors(),
                n.stats().io_errors());
  std::printf("targets:\n");
  for (const auto& tg : t->targets())
    std::printf("  target %u  node %u  %-8s %s  free %.1f / %.1f GiB\n", tg.target_id(), tg.node_id(),
                tg.state() == proto::TARGET_SERVING ? "serving" : "offline", tg.path().c_str(),
                tg.free_bytes() / 1073741824.0, tg.capacity_bytes() / 1073741824.0);
  std::printf("chains:\n");
  for (const auto& ch : t->chains()) {
    std::printf("  chain %u  version %lu  targets", ch.chain_id(), ch.version());
    for (auto tid : ch.targets()) std::printf(" %u", tid);
    std::printf("\n");
  }
  return 0;
}

int Ls(Client& c, const std::string& path, bool longfmt) {
  auto caller = client::ProcessCaller();
  auto dir = c.Resolve(caller, path);
  if (!dir.ok()) return Fail(dir.status());
  if (dir->type() != proto::DIRECTORY) {
    std::printf("%s\n", path.c_str());
    return 0;
  }
  std::string after;
  for (;;) {
    auto page = c.ReadDir(caller, dir->ino(), after, 1024, longfmt);
    if (!page.ok()) return Fail(page.status());
    for (const auto& e : page->entries()) {
      if (longfmt)
        std::printf("%-4s %04o %5u %5u %12lu %s\n", TypeName(e.type()), e.attr().mode(), e.attr().uid(), e.attr().gid(),
                    e.attr().size(), e.name().c_str());
      else
        std::printf("%s\n", e.name().c_str());
    }
    if (page->eof() || page->entries().empty()) break;
    after = page->entries().rbegin()->name();
  }
  return 0;
}

int Stat(Client& c, const std::string& path) {
  auto a = c.Resolve(client::ProcessCaller(), path);
  if (!a.ok()) return Fail(a.status());
  std::printf("path:   %s\ninode:  %lu\ntype:   %s\nmode:   %04o\nowner:  %u:%u\nsize:   %lu\nlinks:  %u\n",
              path.c_str(), a->ino(), TypeName(a->type()), a->mode(), a->uid(), a->gid(), a->size(), a->nlink());
  if (a->type() == proto::DIRECTORY) {
    std::printf("default layout: chunk %u, stripe %u\n", a->dir_layout().chunk_size(), a->dir_layout().stripe_width());
    return 0;
  }
  if (a->type() != proto::REGULAR) return 0;
  const auto& l = a->layout();
  std::printf("layout: chunk %u, stripe %u, chains", l.chunk_size(), l.stripe_width());
  for (auto ch : l.chains()) std::printf(" %u", ch);
  std::printf("\nchunks:\n");
  uint64_t chunks = (a->size() + l.chunk_size() - 1) / l.chunk_size();
  for (uint64_t i = 0; i < chunks; ++i) {
    auto p = c.Place(l, i);
    if (!p.ok()) return Fail(p.status());
    std::printf("  %lu  chain %u  target %u  node %u  %s\n", i, p->chain_id, p->target_id, p->node_id,
                p->address.c_str());
  }
  return 0;
}

// Keeps up to `window` async I/Os in flight over a file, `block` bytes each.
class Pipeline {
 public:
  explicit Pipeline(int window) : window_(window) {}
  // Waits for a free slot; returns the first error seen so far.
  Status Acquire() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return inflight_ < window_; });
    ++inflight_;
    return error_;
  }
  void Release(const Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    if (!st.ok() && error_.ok()) error_ = st;
    --inflight_;
    cv_.notify_all();
  }
  Status Drain() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return inflight_ == 0; });
    return error_;
  }

 private:
  int window_;
  std::mutex mu_;
  std::condition_variable cv_;
  int inflight_ = 0;
  Status error_;
};

int Put(Client& c, const std::string& local, const std::string& remote) {
  auto caller = client::ProcessCaller();
  int fd = ::open(local.c_str(), O_RDONLY);
  if (fd < 0) return Fail(Status::FromErrno(errno, local));
  struct stat st;
  fstat(fd, &st);
  auto parent = c.ResolveParent(caller, remote);
  if (!parent.ok()) return Fail(parent.status());
  auto file = c.Create(caller, parent->first.ino(), parent->second, st.st_mode & 0777, false);
  if (!file.ok()) return Fail(file.status());
  proto::SetAttrReq trunc;
  *trunc.mutable_caller() = caller;
  trunc.set_ino(file->ino());
  trunc.set_set_size(true);
  trunc.set_size(0);
  if (auto t = c.SetAttr(trunc); !t.ok()) return Fail(t.status());
  const size_t block = std::max<size_t>(file->layout().chunk_size(), 1 << 20);
  const int window = 2 * std::max(1u, file->layout().stripe_width());
  std::vector<AlignedBuffer> bufs;
  for (int i = 0; i < window; ++i) bufs.emplace_back(block);
  Pipeline pipe(window);
  uint64_t off = 0;
  for (int slot = 0;; slot = (slot + 1) % window) {
    if (Status s = pipe.Acquire(); !s.ok()) {
      pipe.Release(Status::OK());
      break;
    }
    ssize_t n = ::pread(fd, bufs[slot].data(), block, off);
    if (n <= 0) {
      pipe.Release(n < 0 ? Status::FromErrno(errno, local) : Status::OK());
      break;
    }
    c.WriteAsync(*file, off, n, bufs[slot].data(), [&pipe](Result<size_t> r) { pipe.Release(r.status()); });
    off += n;
  }
  ::close(fd);
  if (Status s = pipe.Drain(); !s.ok()) return Fail(s);
  if (auto a = c.UpdateLength(file->ino(), off); !a.ok()) return Fail(a.status());
  std::printf("put %s -> %s: %lu bytes\n", local.c_str(), remote.c_str(), off);
  return 0;
}

int Get(Client& c, const std::string& remote, const std::string& local) {
  auto file = c.Resolve(client::ProcessCaller(), remote);
  if (!file.ok()) return Fail(file.status());
  if (file->type() != proto::REGULAR) return Fail(Error(proto::INVALID_ARGUMENT, remote + " is not a regular file"));
  int fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Fail(Status::FromErrno(errno, local));
  const size_t block = std::max<size_t>(file->layout().chunk_size(), 1 << 20);
  const int window = 2 * std::max(1u, file->layout().stripe_width());
  std::vector<AlignedBuffer> bufs;
  for (int i = 0; i < window; ++i) bufs.emplace_back(block);
  Pipeline pipe(window);
  int slot = 0;
  for (uint64_t off = 0; off < file->size(); off += block, slot = (slot + 1) % window) {
    if (!pipe.Acquire().ok()) {
      pipe.Release(Status::OK());
      break;
    }
    uint8_t* buf = bufs[slot].data();
    c.ReadAsync(*file, off, block, buf, [&pipe, fd, buf, off](Result<size_t> r) {
      Status st = r.status();
      if (r.ok() && ::pwrite(fd, buf, *r, off) != static_cast<ssize_t>(*r)) st = Status::FromErrno(errno, "write");
      pipe.Release(st);
    });
  }
  Status s = pipe.Drain();
  ::close(fd);
  if (!s.ok()) return Fail(s);
  std::printf("get %s -> %s: %lu bytes\n", remote.c_str(), local.c_str(), file->size());
  return 0;
}

int Layout(Client& c, const std::string& path, bool set, const std::string& chunk, uint32_t stripe) {
  auto caller = client::ProcessCaller();
  auto a = c.Resolve(caller, path);
  if (!a.ok()) return Fail(a.status());
  if (set) {
    auto cs = ParseSize(chunk);
    if (!cs.ok()) return Fail(cs.status());
    a = c.SetLayout(caller, a->ino(), *cs, stripe);
    if (!a.ok()) return Fail(a.status());
  }
  const auto& l = a->type() == proto::DIRECTORY ? a->dir_layout() : a->layout();
  std::printf("%s: chunk_size=%u stripe=%u%s\n", path.c_str(), l.chunk_size(), l.stripe_width(),
              l.stripe_width() == 0 ? " (0: min(16, chains))" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string meta_address = "127.0.0.1:9000";
  ClusterConfig cluster;
  cluster.log_level = "warn";
  ConfigSpec spec("shoal", "Shoal command line");
  spec.Add("meta_address", &meta_address, "host:port of shoal-meta");
  cluster.AddTo(spec);
  CLI::App& app = spec.app();
  app.require_subcommand(1);
  std::string a1, a2, chunk = "1M";
  uint32_t stripe = 0;
  bool longfmt = false;
  auto* status = app.add_subcommand("status", "nodes, targets, chains and their states");
  auto* ls = app.add_subcommand("ls", "list a directory");
  ls->add_option("path", a1)->required();
  ls->add_flag("-l", longfmt, "with attributes (one readdir-plus round trip per page)");
  auto* put = app.add_subcommand("put", "copy a local file in (striped, parallel)");
  put->add_option("local", a1)->required();
  put->add_option("remote", a2)->required();
  auto* get = app.add_subcommand("get", "copy a file out (striped, parallel)");
  get->add_option("remote", a1)->required();
  get->add_option("local", a2)->required();
  auto* stat = app.add_subcommand("stat", "attributes, layout and where each chunk lives");
  stat->add_option("path", a1)->required();
  auto* layout = app.add_subcommand("layout", "a directory's default layout for new files");
  layout->require_subcommand(1);
  auto* lget = layout->add_subcommand("get", "show");
  lget->add_option("path", a1)->required();
  auto* lset = layout->add_subcommand("set", "set (inherited by new files and directories)");
  lset->add_option("path", a1)->required();
  lset->add_option("--chunk-size", chunk, "chunk size, e.g. 1M (64K to 64M, power of two)");
  lset->add_option("--stripe", stripe, "chains per file (0: min(16, chains))");

  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return Fail(st);
  if (exit_now) return 0;
  InitLogging("shoal", cluster.log_level);
  auto creds = cluster.Credentials();
  if (!creds.ok()) return Fail(creds.status());
  client::ClientOptions co;
  co.meta_address = meta_address;
  co.cluster_id = creds->cluster_id;
  co.cluster_key = creds->key;
  auto c = Client::Connect(co);
  if (!c.ok()) return Fail(c.status());
  if (*status) return Status_(**c);
  if (*ls) return Ls(**c, a1, longfmt);
  if (*put) return Put(**c, a1, a2);
  if (*get) return Get(**c, a1, a2);
  if (*stat) return Stat(**c, a1);
  if (*lget) return Layout(**c, a1, false, chunk, stripe);
  if (*lset) return Layout(**c, a1, true, chunk, stripe);
  return 1;
}
