// The FUSE low-level operations: each handler is a thin adapter from a FUSE
// request to one libshoal call, ending in exactly one reply. Reads and writes
// reply from the libshoal completion, so no thread waits per outstanding I/O.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <mutex>
#include <unordered_map>

#include "client/client.h"

namespace shoal::fuse {

struct MountOptions {
  bool page_cache = false;   // --cache=page; O_DIRECT opens always bypass it
  double entry_timeout_s = 1.0;
  double attr_timeout_s = 1.0;
  // Entries and attributes this mount has just made itself (create, mkdir,
  // symlink, link) are cached this long: what meta answered is exactly what
  // this mount asked for, so only another client's change could make them stale.
  double own_change_timeout_s = 30.0;
  uint32_t max_read = 1u << 20;
};

// How far this mount has written each file beyond the length meta knows
// (lengths reach meta on flush/fsync/close). Attributes this mount returns
// include it, so a writer's fstat sees its own writes. Thread-safe.
class WrittenSizes {
 public:
  void Extend(uint64_t ino, uint64_t end);
  // meta now knows `length`: forget what it covers.
  void Reported(uint64_t ino, uint64_t length);
  void Truncated(uint64_t ino);
  uint64_t Get(uint64_t ino) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, uint64_t> ends_;
};

class FuseUring;

// State shared by every handler; passed to libfuse as userdata.
struct FuseContext {
  client::Client* client = nullptr;
  FuseUring* uring = nullptr;  // set when requests may come through io_uring
  MountOptions options;
  WrittenSizes written;
};

const fuse_lowlevel_ops* Operations();

}  // namespace shoal::fuse
