// `shoal put` and `shoal get`: one whole file between the local filesystem
// and Shoal, as the caller (meta checks the caller's rights before a byte
// moves), pipelined by transfer.h, optionally read back and compared.
//
// A local name of "-" is standard input (put) or standard output (get);
// --verify needs a real local file to read back, so it refuses "-".
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "client/client.h"
#include "common/status.h"

namespace shoal::cli {

struct CopyOptions {
  // Read the file back from Shoal after the copy and compare it byte for byte
  // with the local file: CHECKSUM_MISMATCH naming the first difference.
  bool verify = false;
  size_t block_bytes = 0;  // bytes per I/O; 0: the file's chunk size, at least 1 MiB
  int buffers = 0;         // I/Os in flight; 0: twice the stripe width, at least 4
  // Progress of each phase ("put", "get", "verify"): bytes done of `total`
  // (0 when unknown, e.g. a pipe), on the calling thread.
  std::function<void(const std::string& phase, uint64_t done, uint64_t total)> progress;
};

// Creates or truncates `remote` (an absolute Shoal path) and copies `local`
// into it; the file's length is set when every byte is acknowledged. Returns
// the bytes copied.
Result<uint64_t> PutFile(client::Client& c, const client::Caller& caller, const std::string& local,
                         const std::string& remote, const CopyOptions& options);

// Copies `remote` into `local` (created or truncated), bytes in file order.
Result<uint64_t> GetFile(client::Client& c, const client::Caller& caller, const std::string& remote,
                         const std::string& local, const CopyOptions& options);

}  // namespace shoal::cli
