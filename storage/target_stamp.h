// The target stamp: a small text file, <target dir>/SHOAL-TARGET, that says
// which cluster and which target a directory belongs to. It is what lets a
// storage server tell its own disk from an empty, swapped or foreign one.
//
//   # Shoal target stamp. Written by shoal-storage --format; do not edit.
//   format = 1
//   cluster_uuid = 3f6c...-...
//   target_id = 101
//   incarnation = 8c1d2e3f4a5b6c7d
//   lost_below_inode = 0
//
// incarnation: random per format (hex, never 0); meta notices a new one and
// answers with lost_below_inode: chunks of inodes below it may have existed
// on an earlier disk, so a missing one is lost data, not a hole.
//
// Written with WriteFileDurably (temporary file, fsync, rename, fsync of the
// directory): a crash leaves the old stamp or the new one, never half.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/file_env.h"

namespace shoal::storage {

inline constexpr char kTargetStampName[] = "SHOAL-TARGET";

struct TargetStamp {
  std::string cluster_uuid;
  uint32_t target_id = 0;
  uint64_t incarnation = 0;
  uint64_t lost_below_inode = 0;

  bool operator==(const TargetStamp&) const = default;
};

std::string EncodeTargetStamp(const TargetStamp& stamp);
// Strict: every key exactly once, nothing else but comments and blank
// lines. INVALID_ARGUMENT saying what is wrong.
Result<TargetStamp> ParseTargetStamp(std::string_view text);

std::string TargetStampPath(const std::string& dir);
// nullopt when the directory has no stamp; INVALID_ARGUMENT (naming the
// file) when it has one that does not parse; IO errors as they come.
Result<std::optional<TargetStamp>> ReadTargetStamp(FileEnv* env, const std::string& dir);
Status WriteTargetStamp(FileEnv* env, const std::string& dir, const TargetStamp& stamp);

}  // namespace shoal::storage
