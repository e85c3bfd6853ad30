// shoal: the command line. Cluster status, listing, striped parallel put/get
// (with a progress line and --verify), a file's chunk placement, and
// directory layouts. The config file is found by client/cli/config_discovery.h.
#include <chrono>
#include <cstdio>
#include <optional>

#include "client/cli/config_discovery.h"
#include "client/cli/copy.h"
#include "client/cli/placement.h"
#include "client/cli/progress.h"
#include "client/client.h"
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
  switch (t) {
    case proto::DIRECTORY: return "dir";
    case proto::SYMLINK: return "link";
    case proto::FIFO: return "fifo";
    case proto::CHAR_DEVICE: return "chardev";
    case proto::BLOCK_DEVICE: return "blockdev";
    case proto::SOCKET: return "socket";
    default: return "file";
  }
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

int Stat(Client& c, const std::string& path, bool list_chunks) {
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
  std::printf("\n");
  auto place = [&](uint64_t i) { return c.Place(l, i); };
  auto summary = cli::SummarisePlacement(l, a->size(), place);
  if (!summary.ok()) return Fail(summary.status());
  std::fputs(cli::FormatPlacement(*summary).c_str(), stdout);
  if (!list_chunks) return 0;
  std::printf("chunks:\n");
  for (uint64_t i = 0; i < summary->chunks; ++i) {
    auto p = c.Place(l, i);
    if (!p.ok()) return Fail(p.status());
    std::printf("  %lu  chain %u  target %u  node %u  %s\n", i, p->chain_id, p->target_id, p->node_id,
                p->address.c_str());
  }
  return 0;
}

// Draws one progress line per phase of a copy on a terminal (nothing otherwise).
class CopyProgress {
 public:
  explicit CopyProgress(std::string name) : name_(std::move(name)) {}
  ~CopyProgress() { Finish(); }
  void operator()(const std::string& phase, uint64_t done, uint64_t total) {
    if (!line_ || phase != phase_) {
      Finish();
      phase_ = phase;
      line_.emplace(cli::ProgressLine::ForStderr(phase + " " + name_, total));
    }
    line_->set_total(total);
    line_->Update(done);
  }
  void Finish() {
    if (line_) line_->Finish();
    line_.reset();
  }

 private:
  std::string name_, phase_;
  std::optional<cli::ProgressLine> line_;
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int Copy(Client& c, bool put, const std::string& from, const std::string& to, bool verify) {
  auto start = std::chrono::steady_clock::now();
  CopyProgress progress(put ? to : from);
  cli::CopyOptions o;
  o.verify = verify;
  o.progress = [&progress](const std::string& phase, uint64_t done, uint64_t total) { progress(phase, done, total); };
  auto caller = client::ProcessCaller();
  auto n = put ? cli::PutFile(c, caller, from, to, o) : cli::GetFile(c, caller, from, to, o);
  progress.Finish();
  if (!n.ok()) return Fail(n.status());
  double secs = SecondsSince(start);
  // With get to standard output the summary would mix with the data: stderr then.
  FILE* out = !put && to == "-" ? stderr : stdout;
  std::fprintf(out, "%s %s -> %s: %lu bytes in %.1f s (%s/s)%s\n", put ? "put" : "get", from.c_str(), to.c_str(), *n,
               secs, cli::HumanBytes(secs > 0 ? *n / secs : 0).c_str(), verify ? ", verified" : "");
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
  app.footer(
      "Config: --config FILE, else $SHOAL_CONFIG, else $SHOAL_HOME/conf/client.toml, else " +
      std::string(cli::kLocalClusterConfig) + " (deploy/local-cluster.sh), else " + cli::kInstalledConfig + ".");
  // No config file is needed when the command line names the cluster itself.
  spec.set_config_finder([&app](const std::string& flag) {
    return cli::FindClientConfig(cli::ProcessConfigSources(flag), app.get_option("--meta-address")->count() > 0);
  });
  std::string a1, a2, chunk = "1M";
  uint32_t stripe = 0;
  bool longfmt = false, verify = false, list_chunks = false;
  auto* status = app.add_subcommand("status", "nodes, targets, chains and their states");
  auto* ls = app.add_subcommand("ls", "list a directory");
  ls->add_option("path", a1)->required();
  ls->add_flag("-l", longfmt, "with attributes (one readdir-plus round trip per page)");
  auto* put = app.add_subcommand("put", "copy a local file in (striped, parallel; '-' reads standard input)");
  put->add_option("local", a1)->required();
  put->add_option("remote", a2)->required();
  put->add_flag("--verify", verify, "read the file back and compare it with the local file");
  auto* get = app.add_subcommand("get", "copy a file out (striped, parallel; '-' writes standard output)");
  get->add_option("remote", a1)->required();
  get->add_option("local", a2)->required();
  get->add_flag("--verify", verify, "read the file again and compare it with what was written locally");
  auto* stat = app.add_subcommand("stat", "attributes, layout, and chunk placement per node and target");
  stat->add_option("path", a1)->required();
  stat->add_flag("--chunks", list_chunks, "also list every chunk and where it lives");
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
  if (*put) return Copy(**c, true, a1, a2, verify);
  if (*get) return Copy(**c, false, a1, a2, verify);
  if (*stat) return Stat(**c, a1, list_chunks);
  if (*lget) return Layout(**c, a1, false, chunk, stripe);
  if (*lset) return Layout(**c, a1, true, chunk, stripe);
  return 1;
}
