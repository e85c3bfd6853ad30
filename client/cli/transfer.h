// Whole-file transfers between a local descriptor and a Shoal file, pipelined
// over a fixed set of buffers, each owned by exactly one party at a time.
//
// A transfer keeps up to `buffers` I/Os in flight, `block_bytes` each. A
// buffer is free (owned by the calling thread) or lent to exactly one I/O. It
// comes back to the free list only when that I/O has completed and, for a
// download, its bytes have been handed to the sink in file order. So no
// buffer is refilled while a write from it may still be sent (or retried),
// and none is read into while an earlier read into it may still land —
// whatever order the completions arrive in.
//
// All local I/O (reading the source, feeding the sink) and progress reports
// run on the calling thread; completion callbacks only record their result
// and wake it, so they never block the client's threads. On an error the
// transfer stops issuing, waits for every I/O still in flight, and returns
// the first error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "client/client.h"
#include "common/status.h"

namespace shoal::cli {

// The remote side: asynchronous positional I/O on one file. `done` runs
// exactly once, on any thread; the buffer must stay valid (and, for a read,
// untouched) until then.
class RemoteFile {
 public:
  virtual ~RemoteFile() = default;
  virtual void ReadAsync(uint64_t offset, size_t length, uint8_t* buf, client::IoCallback done) = 0;
  virtual void WriteAsync(uint64_t offset, size_t length, const uint8_t* data, client::IoCallback done) = 0;
};

// A Shoal file through libshoal. Reads end at file.size().
class ShoalFile : public RemoteFile {
 public:
  ShoalFile(client::Client& client, client::Attr file) : client_(client), file_(std::move(file)) {}
  void ReadAsync(uint64_t offset, size_t length, uint8_t* buf, client::IoCallback done) override;
  void WriteAsync(uint64_t offset, size_t length, const uint8_t* data, client::IoCallback done) override;

 private:
  client::Client& client_;
  client::Attr file_;
};

// Where a download's bytes go: called in file order, on the calling thread.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Take(uint64_t offset, const uint8_t* data, size_t length) = 0;
};

// Writes everything to a descriptor with write(2): a file, a pipe or a terminal.
class FdSink : public ByteSink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  Status Take(uint64_t offset, const uint8_t* data, size_t length) override;

 private:
  int fd_;
  std::string name_;
};

// Compares with the same range of a local file (pread). CHECKSUM_MISMATCH,
// naming the first differing byte, when they differ or the local file ends early.
class CompareSink : public ByteSink {
 public:
  CompareSink(int fd, std::string local_name, std::string remote_name)
      : fd_(fd), local_(std::move(local_name)), remote_(std::move(remote_name)) {}
  Status Take(uint64_t offset, const uint8_t* data, size_t length) override;

 private:
  int fd_;
  std::string local_, remote_;
  std::string scratch_;
};

struct TransferOptions {
  size_t block_bytes = 1 << 20;  // bytes per I/O (and per buffer)
  int buffers = 4;               // I/Os in flight at most
  // Called on the calling thread with the bytes done so far (acknowledged
  // writes; reads handed to the sink), after completions and at least every
  // progress_interval_ms while waiting.
  std::function<void(uint64_t bytes)> progress;
  int progress_interval_ms = 250;
};

// Copies `source` (read(2) until end of file, so pipes work) into the remote
// file from offset 0. Returns the bytes written, all acknowledged.
Result<uint64_t> Upload(int source, const std::string& source_name, RemoteFile& remote, const TransferOptions& options);

// Reads [0, size) of the remote file into `sink`. A read that comes back
// short (the file shrank meanwhile) is an error: OUT_OF_RANGE.
Status Download(RemoteFile& remote, uint64_t size, ByteSink& sink, const TransferOptions& options);

}  // namespace shoal::cli
