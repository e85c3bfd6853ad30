// DirAttrCache: the attributes of directories as this client's own calls
// left them, from the DirChanges meta puts in their replies.
//
// Why: the kernel drops its copy of a directory's attributes after every
// create, unlink, mkdir or rename made through the mount, and needs them again
// at the next permission check in that directory: one GETATTR round trip per
// file created. The reply of the change already carries them.
//
// Fresher than anything meta would answer at that moment, and kept only
// `ttl_ms` (the mount's attribute timeout): the staleness a kernel-cached copy
// would have. Entries never move backwards (a directory's newer ctime wins
// over replies that arrive out of order). Note(...) of a failed or replayed
// mutation, or of one whose outcome is unknown, drops everything: what it did
// to directories is not known.
//
// Thread-safe. Time from the given Clock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/clock.h"
#include "proto/meta.pb.h"

namespace shoal::client {

class DirAttrCache {
 public:
  // ttl_ms 0: off (Get finds nothing, Note keeps nothing).
  DirAttrCache(const Clock* clock, int64_t ttl_ms, size_t max_entries = 4096)
      : clock_(clock), ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  // The directory's attributes, when a change of this client's left them
  // less than ttl_ms ago.
  std::optional<proto::Attr> Get(uint64_t ino);
  // What a successful mutating call reported.
  void Note(const proto::DirChanges& dirs);
  // A mutating call failed or its outcome is unknown.
  void Clear();

 private:
  struct Entry {
    proto::Attr attr;
    int64_t stored_ms;
  };
  const Clock* clock_;
  const int64_t ttl_ms_;
  const size_t max_entries_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace shoal::client
