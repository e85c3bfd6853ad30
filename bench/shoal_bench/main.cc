// shoal-bench: one read workload generator over three backends (native
// libshoal, posix io_uring + O_DIRECT, nfs via libnfs); see bench/README.md.
//
//   shoal-bench make posix --path /var/tmp/b.dat --size 2g
//   shoal-bench posix --path /var/tmp/b.dat --bs 4k --qd 64 --seconds 10 --verify
//   shoal-bench make native --path /ds --files 1000 --min-size 64k --max-size 512k
//   shoal-bench native --path /ds --dataset --qd 16 --json out.json
//   shoal-bench nfs --nfs-url 'nfs://127.0.0.1/export?version=3' --nfs-conns 4 --path /b.dat
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "bench/shoal_bench/backend.h"
#include "bench/shoal_bench/pattern.h"
#include "bench/shoal_bench/workload.h"
#include "client/cli/config_discovery.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"

using namespace shoal;
using namespace shoal::bench;

namespace {

constexpr const char* kProgram = "shoal-bench";

// "4096", "4k", "128K", "1m", "2g": bytes (binary suffixes).
Result<uint64_t> ParseSize(const std::string& s, const char* flag) {
  auto bad = [&] { return Error(proto::INVALID_ARGUMENT, std::string(flag) + ": bad size '" + s + "' (e.g. 4k, 1m, 2g)"); };
  if (s.empty()) return bad();
  size_t digits = 0;
  while (digits < s.size() && isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || digits > 15) return bad();
  uint64_t v = std::stoull(s.substr(0, digits));
  std::string suffix = s.substr(digits);
  if (suffix.size() == 2 && (suffix[1] == 'b' || suffix[1] == 'B')) suffix.pop_back();
  if (suffix.empty()) return v;
  if (suffix.size() != 1) return bad();
  switch (suffix[0]) {
    case 'k': case 'K': return v << 10;
    case 'm': case 'M': return v << 20;
    case 'g': case 'G': return v << 30;
    case 't': case 'T': return v << 40;
    default: return bad();
  }
}

Result<std::vector<int>> ParsePids(const std::string& s) {
  std::vector<int> pids;
  std::stringstream in(s);
  std::string p;
  while (std::getline(in, p, ',')) {
    if (p.empty()) continue;
    char* end = nullptr;
    long v = std::strtol(p.c_str(), &end, 10);
    if (*end != '\0' || v <= 0) return Error(proto::INVALID_ARGUMENT, "--server-pids: bad pid '" + p + "'");
    pids.push_back(static_cast<int>(v));
  }
  return pids;
}

struct Report {
  std::string backend, workload;
  uint64_t bs;
  uint32_t qd;
  int threads;
  const WorkloadResult* r;
};

std::string Json(const Report& p) {
  const WorkloadResult& r = *p.r;
  double gb = static_cast<double>(r.bytes) / 1e9;
  char buf[1024];
  std::snprintf(buf, sizeof(buf),
                "{\"backend\":\"%s\",\"workload\":\"%s\",\"bs\":%llu,\"qd\":%u,\"threads\":%d,\"seconds\":%.3f,"
                "\"ops\":%llu,\"bytes\":%llu,\"iops\":%.1f,\"mbps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                "\"p999_us\":%.1f,\"client_cpu_s\":%.3f,\"server_cpu_s\":%.3f,\"cpu_s_per_gb\":%s,"
                "\"errors\":%llu,\"verify_failures\":%llu}",
                p.backend.c_str(), p.workload.c_str(), static_cast<unsigned long long>(p.bs), p.qd, p.threads,
                r.seconds, static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.bytes),
                r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0.0,
                r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e6 : 0.0,
                static_cast<double>(r.latency_ns.Quantile(0.50)) / 1e3,
                static_cast<double>(r.latency_ns.Quantile(0.99)) / 1e3,
                static_cast<double>(r.latency_ns.Quantile(0.999)) / 1e3, r.client_cpu_s, r.server_cpu_s,
                gb > 0 ? std::to_string((r.client_cpu_s + r.server_cpu_s) / gb).c_str() : "null",
                static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.verify_failures));
  return buf;
}

void PrintTable(const Report& p) {
  const WorkloadResult& r = *p.r;
  double gb = static_cast<double>(r.bytes) / 1e9;
  std::printf("%-8s %-8s %8s %4s %3s %7s %10s %10s %9s %9s %9s %9s %8s %8s %9s %6s %6s\n", "backend", "workload", "bs",
              "qd", "thr", "secs", "ops", "IOPS", "MB/s", "p50_us", "p99_us", "p999_us", "cli_cpu", "srv_cpu",
              "cpu_s/GB", "errors", "verify");
  std::printf("%-8s %-8s %8llu %4u %3d %7.2f %10llu %10.0f %9.1f %9.1f %9.1f %9.1f %8.2f %8.2f %9.3f %6llu %6llu\n",
              p.backend.c_str(), p.workload.c_str(), static_cast<unsigned long long>(p.bs), p.qd, p.threads,
              r.seconds, static_cast<unsigned long long>(r.ops), r.seconds > 0 ? r.ops / r.seconds : 0.0,
              r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0.0, r.latency_ns.Quantile(0.50) / 1e3,
              r.latency_ns.Quantile(0.99) / 1e3, r.latency_ns.Quantile(0.999) / 1e3, r.client_cpu_s, r.server_cpu_s,
              gb > 0 ? (r.client_cpu_s + r.server_cpu_s) / gb : 0.0, static_cast<unsigned long long>(r.errors),
              static_cast<unsigned long long>(r.verify_failures));
  if (!r.first_error.empty()) std::printf("first error: %s\n", r.first_error.c_str());
}

Status Make(Backend& b, const std::string& path, uint64_t size, uint64_t files, uint64_t min_size, uint64_t max_size) {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  if (files == 0) {
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) RETURN_IF_ERROR(b.MakeDir(path.substr(0, slash)));
    RETURN_IF_ERROR(b.MakeFile(path, 0, size));
    bytes = size;
  } else {
    if (min_size > max_size) return Error(proto::INVALID_ARGUMENT, "--min-size is larger than --max-size");
    RETURN_IF_ERROR(b.MakeDir(path));
    for (uint64_t i = 0; i < files; ++i) {
      uint64_t n = DatasetFileSize(i, min_size, max_size);
      RETURN_IF_ERROR(b.MakeFile(path + "/" + DatasetFileName(i), i, n));
      bytes += n;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("made %s: %llu file(s), %llu bytes in %.1f s\n", path.c_str(),
              static_cast<unsigned long long>(files == 0 ? 1 : files), static_cast<unsigned long long>(bytes), secs);
  return Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  shoal::KeepLargeBuffersInHeap();
  std::string meta_address = "127.0.0.1:9000";
  ClusterConfig cluster;
  cluster.log_level = "warn";
  ConfigSpec spec(kProgram, "read benchmark: one workload generator over native (libshoal), posix and nfs backends");
  spec.Add("meta_address", &meta_address, "host:port of shoal-meta (native)");
  cluster.AddTo(spec);
  CLI::App& app = spec.app();
  app.require_subcommand(1);
  std::string path, bs_s = "4k", json_path, pids_s, nfs_url, size_s, min_s = "64k", max_s = "512k", make_backend;
  WorkloadOptions wo;
  uint64_t files = 0;
  int nfs_conns = 4;
  app.add_option("--path", path, "file (or with --dataset, directory) to read; a Shoal path for native, "
                                 "local for posix, inside the export for nfs")->required();
  app.add_flag("--dataset", wo.dataset, "read every file of the directory whole, in shuffled order");
  app.add_option("--bs", bs_s, "bytes per random read (4k, 128k, 1m)")->capture_default_str();
  app.add_option("--qd", wo.qd, "reads in flight per thread")->capture_default_str();
  app.add_option("--threads", wo.threads, "worker threads")->capture_default_str();
  app.add_option("--seconds", wo.seconds, "run time (0: until --ops)")->capture_default_str();
  app.add_option("--ops", wo.ops, "stop after this many reads (0: until --seconds)")->capture_default_str();
  app.add_option("--seed", wo.seed, "random seed for offsets and order")->capture_default_str();
  app.add_flag("--verify", wo.verify, "check every byte read against the pattern 'make' wrote");
  app.add_option("--json", json_path, "also write the result as one JSON object to this file");
  app.add_option("--server-pids", pids_s, "comma-separated server PIDs whose CPU time to count");
  app.add_option("--nfs-url", nfs_url, "libnfs URL of the export, e.g. nfs://127.0.0.1/export?version=3");
  app.add_option("--nfs-conns", nfs_conns, "NFS connections (at least --threads)")->capture_default_str();
  app.add_option("--size", size_s, "make: bytes of the one file (e.g. 2g)");
  app.add_option("--files", files, "make: number of dataset files (instead of --size)");
  app.add_option("--min-size", min_s, "make: smallest dataset file")->capture_default_str();
  app.add_option("--max-size", max_s, "make: largest dataset file")->capture_default_str();
  app.fallthrough();
  auto* native = app.add_subcommand("native", "Shoal through libshoal's BatchReader");
  auto* posix = app.add_subcommand("posix", "a local path through io_uring with O_DIRECT");
  auto* nfs = app.add_subcommand("nfs", "an NFS server through libnfs (--nfs-url)");
  auto* make = app.add_subcommand("make", "write the file or dataset with the pattern --verify checks");
  make->add_option("backend", make_backend, "native, posix or nfs")->required()->check(CLI::IsMember({"native", "posix", "nfs"}));
  for (auto* sub : {native, posix, nfs, make}) sub->fallthrough();
  spec.set_config_finder([&](const std::string& flag) -> Result<std::string> {
    bool is_native = native->parsed() || (make->parsed() && make_backend == "native");
    if (!is_native) return flag;  // only the native backend talks to a cluster
    return cli::FindClientConfig(cli::ProcessConfigSources(flag), app.get_option("--meta-address")->count() > 0);
  });

  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return ExitWithError(kProgram, st);
  if (exit_now) return 0;
  InitLogging("bench", cluster.log_level);
  std::string backend_name = make->parsed() ? make_backend : native->parsed() ? "native" : posix->parsed() ? "posix" : "nfs";

  Result<std::unique_ptr<Backend>> backend = Error(proto::INTERNAL, "no backend");
  if (backend_name == "native") {
    auto creds = cluster.Credentials();
    if (!creds.ok()) return ExitWithError(kProgram, creds.status());
    backend = NewNativeBackend({meta_address, creds->cluster_id, creds->key});
  } else if (backend_name == "posix") {
    backend = NewPosixBackend();
  } else {
    if (nfs_url.empty()) return ExitWithError(kProgram, Error(proto::INVALID_ARGUMENT, "nfs needs --nfs-url"));
    backend = NewNfsBackend(nfs_url, nfs_conns);
  }
  if (!backend.ok()) return ExitWithError(kProgram, backend.status());

  if (make->parsed()) {
    uint64_t size = 0, min_size = 0, max_size = 0;
    if (files == 0) {
      if (size_s.empty()) return ExitWithError(kProgram, Error(proto::INVALID_ARGUMENT, "make needs --size or --files"));
      auto s = ParseSize(size_s, "--size");
      if (!s.ok()) return ExitWithError(kProgram, s.status());
      size = *s;
    } else {
      auto a = ParseSize(min_s, "--min-size"), b = ParseSize(max_s, "--max-size");
      if (!a.ok()) return ExitWithError(kProgram, a.status());
      if (!b.ok()) return ExitWithError(kProgram, b.status());
      min_size = *a;
      max_size = *b;
    }
    st = Make(**backend, path, size, files, min_size, max_size);
    return st.ok() ? 0 : ExitWithError(kProgram, st);
  }

  auto bs = ParseSize(bs_s, "--bs");
  if (!bs.ok()) return ExitWithError(kProgram, bs.status());
  wo.bs = *bs;
  auto pids = ParsePids(pids_s);
  if (!pids.ok()) return ExitWithError(kProgram, pids.status());
  wo.server_pids = *pids;
  auto listed = (*backend)->List(path, wo.dataset);
  if (!listed.ok()) return ExitWithError(kProgram, listed.status());
  auto result = RunWorkload(**backend, *listed, wo);
  if (!result.ok()) return ExitWithError(kProgram, result.status());
  Report report{backend_name, wo.dataset ? "dataset" : "file", wo.dataset ? 0 : wo.bs, wo.qd, wo.threads, &*result};
  PrintTable(report);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << Json(report) << "\n";
    if (!out.good()) return ExitWithError(kProgram, Error(proto::IO_ERROR, "cannot write " + json_path));
  }
  bool failed = result->errors > 0 || result->verify_failures > 0 || result->ops == 0;
  return failed ? 1 : 0;
}
