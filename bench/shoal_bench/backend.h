// The seam between shoal-bench's workload generator and what it reads from:
// Shoal's library (native), a local path through io_uring (posix) or an NFS
// server through libnfs (nfs). A backend lists the files, writes them (make)
// and hands each worker thread its own Queue of reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace shoal::bench {

struct FileEntry {
  std::string path;  // as the backend names it
  uint64_t size = 0;
  uint64_t index = 0;  // the pattern's file index (pattern.h)
};

struct ReadOp {
  uint32_t file = 0;  // into the file list the queue was made with
  uint64_t offset = 0;
  size_t length = 0;
  uint8_t* buf = nullptr;  // aligned to Backend::alignment(), `length` bytes
  uint32_t tag = 0;        // the worker's slot, < depth
};

struct ReadDone {
  uint32_t tag = 0;
  bool ok = false;
  size_t bytes = 0;
};

// One worker thread's reads; used only by that thread.
class Queue {
 public:
  virtual ~Queue() = default;  // waits for or abandons reads in flight; never writes a buffer afterwards
  // Starts a read; at most `depth` are in flight. A refusal counts as a failed read.
  virtual Status Submit(const ReadOp& op) = 0;
  // Waits up to timeout_ms for at least one completion; returns how many it
  // put in out[0..max).
  virtual size_t Reap(ReadDone* out, size_t max, int timeout_ms) = 0;
  // The first failure's message ("" when none), for the report.
  const std::string& first_error() const { return first_error_; }

 protected:
  void NoteError(const std::string& msg) {
    if (first_error_.empty()) first_error_ = msg;
  }

 private:
  std::string first_error_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // `path` is one file (dataset false) or a directory of dataset files named
  // by their index (dataset true), listed in index order.
  virtual Result<std::vector<FileEntry>> List(const std::string& path, bool dataset) = 0;
  // Worker `worker` of `workers`, `depth` reads in flight.
  virtual Result<std::unique_ptr<Queue>> NewQueue(const std::vector<FileEntry>* files, uint32_t depth, int worker,
                                                  int workers) = 0;
  // Reads' buffers, offsets and lengths must be multiples of this (O_DIRECT).
  virtual size_t alignment() const { return 1; }

  // make: the directory (and parents as needed), and one file of the pattern.
  virtual Status MakeDir(const std::string& path) = 0;
  virtual Status MakeFile(const std::string& path, uint64_t index, uint64_t size) = 0;
};

struct NativeOptions {
  std::string meta_address;
  std::string cluster_id;
  std::string cluster_key;
};
Result<std::unique_ptr<Backend>> NewNativeBackend(const NativeOptions& options);
Result<std::unique_ptr<Backend>> NewPosixBackend();
// `url` as libnfs parses it (nfs://server/export?version=3...); `conns`
// contexts in all, spread over the workers (each needs at least one).
Result<std::unique_ptr<Backend>> NewNfsBackend(const std::string& url, int conns);

}  // namespace shoal::bench
