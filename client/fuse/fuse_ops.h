// The FUSE low-level operations: each handler is a thin adapter from a FUSE
// request to one libshoal call, ending in exactly one reply. Reads and writes
// reply from the libshoal completion, so no thread waits per outstanding I/O.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "client/client.h"

namespace shoal::fuse {

struct MountOptions {
  bool page_cache = false;   // --cache=page; O_DIRECT opens always bypass it
  double entry_timeout_s = 1.0;
  double attr_timeout_s = 1.0;
  uint32_t max_read = 1u << 20;
};

// State shared by every handler; passed to libfuse as userdata.
struct FuseContext {
  client::Client* client;
  MountOptions options;
};

const fuse_lowlevel_ops* Operations();

}  // namespace shoal::fuse
