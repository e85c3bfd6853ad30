// DirAttrCache: the attributes of directories as this client's own calls
// left them, from the DirChanges meta puts in their replies.
//
// Why: the kernel drops its copy of a directory's attributes after every
// create, unlink, mkdir or rename made through the mount, and needs them again
// at the next permission check in that directory: one GETATTR round trip per
// file created. The reply of the change already carries them.
//
// No staler than a kernel-cached copy: an entry is served for `ttl_ms` (the
// mount's attribute timeout) from when its reply arrived, and Get says how
// much of that is left, so that the kernel keeps what it is given no longer.
// Entries never move backwards: a directory's newer ctime wins over replies
// that arrive out of order, a removed directory is not brought back by a late
// reply of an earlier change in it, and a reply to a call sent before the
// last Clear is dropped. A failed, replayed or unanswered mutation Clears:
// what it did to directories is not known.
//
// Thread-safe. Time from the given Clock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/clock.h"
#include "proto/meta.pb.h"

namespace shoal::client {

class DirAttrCache {
 public:
  // ttl_ms 0: off (Get finds nothing, Note keeps nothing).
  DirAttrCache(const Clock* clock, int64_t ttl_ms, size_t max_entries = 4096)
      : clock_(clock), ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  struct Hit {
    proto::Attr attr;
    int64_t fresh_for_ms;  // > 0: how long the caller may keep it
  };
  // The directory's attributes, when a change of this client's left them
  // less than ttl_ms ago.
  std::optional<Hit> Get(uint64_t ino);
  // Taken before a mutating call is sent, and given to Note with its reply.
  uint64_t generation();
  // What a successful mutating call reported (ignored when the cache was
  // cleared after `generation` was taken).
  void Note(const proto::DirChanges& dirs, uint64_t generation);
  // A mutating call failed or its outcome is unknown.
  void Clear();

 private:
  struct Entry {
    proto::Attr attr;
    int64_t stored_ms;
  };
  // Drops expired entries when full; clears them if that is not enough. Requires mu_.
  void MakeRoom(int64_t now);

  const Clock* clock_;
  const int64_t ttl_ms_;
  const size_t max_entries_;
  std::mutex mu_;
  uint64_t generation_ = 0;                         // guarded by mu_
  std::unordered_map<uint64_t, Entry> entries_;     // guarded by mu_
  std::unordered_set<uint64_t> removed_;            // directories seen removed; guarded by mu_
};

}  // namespace shoal::client
