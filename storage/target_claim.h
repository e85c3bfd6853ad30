// Whether this storage server may serve a target directory, and formatting.
//
// A server serves only targets stamped (target_stamp.h) for its cluster and
// its configured target id. Everything else is refused with a message that
// names the directory and says what is wrong, unless the operator asked to
// format:
//
//   --format              formats targets that are unstamped AND empty (a new
//                         disk, or one whose contents were lost). Stamped
//                         targets are left alone, so the flag is harmless on
//                         a restart. A non-empty unstamped directory is
//                         refused: it may be the wrong path.
//   --format-target=ID    wipes and formats target ID whatever it holds
//                         (a swapped disk, a foreign stamp, leftovers).
//
// Start-up runs in two steps, because the cluster UUID comes from meta:
//   1. ClaimTarget (before meta is asked): reads the stamp, checks the id,
//      decides whether the target is to be formatted (and draws its new
//      incarnation). Touches nothing.
//   2. SettleTarget (with meta's registration answer): refuses a stamp of
//      another cluster, formats (wipes the directory's contents, writes a new
//      stamp) and records a grown lost_below_inode in the stamp, durably.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "storage/file_env.h"
#include "storage/node_agent.h"
#include "storage/target_stamp.h"

namespace shoal::storage {

struct FormatRequest {
  bool format_empty = false;      // --format
  std::set<uint32_t> reformat;    // --format-target=ID (repeatable)
};

struct TargetClaim {
  TargetConfig config;
  std::optional<TargetStamp> stamp;  // the valid stamp found, unless formatting
  bool format = false;               // to be wiped and stamped anew in SettleTarget
  uint64_t incarnation = 0;          // the stamp's, or the new one when formatting
};

// Step 1. INVALID_ARGUMENT (naming the directory) for a missing directory, an
// unstamped one, a stamp for another target id or an unreadable stamp,
// unless `request` asks to format it.
Result<TargetClaim> ClaimTarget(FileEnv* env, const TargetConfig& target, const FormatRequest& request);

// Step 2. `cluster_uuid` and `lost_below_inode` are meta's answer for this
// target. INVALID_ARGUMENT when the target belongs to another cluster.
// Returns the stamp now durably on disk.
Result<TargetStamp> SettleTarget(FileEnv* env, TargetClaim& claim, const std::string& cluster_uuid,
                                 uint64_t lost_below_inode);

}  // namespace shoal::storage
