// The workload generator: worker threads, each keeping `qd` reads in flight
// through its own Queue, with per-read latency, byte counts and (optionally)
// a check of every byte against the pattern. Written once for all backends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/shoal_bench/backend.h"
#include "bench/shoal_bench/histogram.h"

namespace shoal::bench {

struct WorkloadOptions {
  bool dataset = false;  // false: random reads of `bs` in one file; true: whole files, shuffled
  uint64_t bs = 4096;
  uint32_t qd = 16;
  int threads = 1;
  double seconds = 10;  // 0: no time bound
  uint64_t ops = 0;     // 0: no count bound (at least one bound must be set)
  bool verify = false;
  uint64_t seed = 1;
  std::vector<int> server_pids;  // their CPU time over the timed phase is reported too
};

struct WorkloadResult {
  double seconds = 0;  // wall time of the timed phase
  uint64_t ops = 0;    // reads completed (with or without error)
  uint64_t bytes = 0;  // bytes read by successful reads
  uint64_t errors = 0;
  uint64_t verify_failures = 0;
  Histogram latency_ns;
  std::string first_error;
  double client_cpu_s = 0;  // this process, over the timed phase
  double server_cpu_s = 0;  // the server_pids', over the timed phase
};

// utime + stime of a process from /proc/<pid>/stat; NOT_FOUND when it is gone.
Result<double> ProcessCpuSeconds(int pid);

// Runs the workload over `files` (from backend.List). INVALID_ARGUMENT for
// settings the files or backend cannot take (an empty list, a block larger
// than the file, a block the backend's alignment forbids); a failed read is
// counted in the result, not returned.
Result<WorkloadResult> RunWorkload(Backend& backend, const std::vector<FileEntry>& files, const WorkloadOptions& o);

}  // namespace shoal::bench
