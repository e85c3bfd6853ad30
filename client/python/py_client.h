// The C++ side of the Python module, free of Python: a Client plus what the
// module adds on top of libshoal — paths under a local Shoal mount, blocking
// many-read batches, whole-file parallel read and write, and a readdir-plus
// walk. module.cc wraps it for Python (GIL released around every call here).
//
// Thread-safety: as Client (any number of threads). Not fork-safe: the
// Client's threads do not exist in a forked child; module.cc refuses use there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/status.h"

namespace shoal::python {

class Session {
 public:
  static Result<std::unique_ptr<Session>> Connect(const client::ClientOptions& options);

  // The namespace path for `path`: an absolute namespace path ("/datasets/x")
  // is itself; a path under a mounted Shoal file system (fuse.shoal in
  // /proc/mounts, absolute or relative to the working directory) loses the
  // mount point. A relative path not under a mount is INVALID_ARGUMENT.
  Result<std::string> NamespacePath(const std::string& path) const;
  // Resolves (through NamespacePath), following no final symlink.
  Result<client::Attr> Resolve(const std::string& path);
  // Read permission from the attributes' mode bits for this process's
  // caller: what meta's open checks. PERMISSION_DENIED otherwise.
  Status CheckReadable(const client::Attr& file, const std::string& path) const;

  struct Read {
    const client::Attr* file = nullptr;
    uint64_t offset = 0;
    size_t length = 0;
    uint8_t* buf = nullptr;
    // Results: OK with `bytes` (< length only at end of file), or an error.
    Status status;
    size_t bytes = 0;
  };
  // Issues every read at once (Client::ReadAsyncMany: one request per server
  // for many items) and waits until all have completed; the client bounds
  // each by its timeouts and retries. Reads with a null file are skipped.
  void ReadMany(std::vector<Read>& reads);
  // Reads a whole file of `file.size()` bytes into `buf` in parallel blocks.
  // OUT_OF_RANGE when it comes back short (the file shrank).
  Status ReadWhole(const client::Attr& file, uint8_t* buf);
  // Creates or truncates `path` and writes `data` in parallel blocks; the
  // length is set at meta when every block is acknowledged.
  Result<uint64_t> WriteWhole(const std::string& path, const uint8_t* data, size_t length);

  struct Entry {
    std::string path;  // namespace path
    client::Attr attr;
  };
  // Every regular file under `root` (recursively, one readdir-plus page
  // walk per directory: no lookup per file), sorted by path. Symlinks are not followed.
  Result<std::vector<Entry>> Walk(const std::string& root);
  // The names in one directory (readdir-plus), sorted.
  Result<std::vector<Entry>> List(const std::string& dir);

  client::Client& client() { return *client_; }

 private:
  explicit Session(std::unique_ptr<client::Client> c);
  Result<std::vector<Entry>> ListNamespace(const std::string& namespace_path);
  std::unique_ptr<client::Client> client_;
  client::Caller caller_;
  std::vector<std::string> mounts_;  // fuse.shoal mount points, longest first
};

}  // namespace shoal::python
