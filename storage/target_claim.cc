#include "storage/target_claim.h"

#include <algorithm>

#include "common/log.h"
#include "common/random_id.h"

namespace shoal::storage {
namespace {

// Entries a directory may hold and still count as empty: a file system's
// own lost+found (a target is often a disk's root) and the temporary file of
// a stamp whose write did not finish.
bool IgnoredEntry(const std::string& name) {
  return name == "lost+found" || name == std::string(kTargetStampName) + ".tmp";
}

std::string Where(const TargetConfig& t) { return "target " + std::to_string(t.id) + " at " + t.path; }

Status Refuse(const TargetConfig& t, const std::string& what) {
  return Error(proto::INVALID_ARGUMENT, Where(t) + ": " + what);
}

// Removes `path` and, when it is a directory, everything under it. Links are
// removed, never followed.
Status RemoveTree(FileEnv* env, const std::string& path) {
  Status st = env->Unlink(path);
  if (st.ok() || st.code() == proto::NOT_FOUND) return Status::OK();
  auto names = env->ListDir(path);
  if (!names.ok()) return st;  // not a directory: the unlink's error is the real one
  for (const auto& name : *names) RETURN_IF_ERROR(RemoveTree(env, path + "/" + name));
  return env->RemoveDir(path);
}

// Empties a target directory (but lost+found), durably.
Status WipeTarget(FileEnv* env, const std::string& dir) {
  ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  for (const auto& name : names)
    if (name != "lost+found") RETURN_IF_ERROR(RemoveTree(env, dir + "/" + name));
  return env->SyncDir(dir);
}

}  // namespace

Result<TargetClaim> ClaimTarget(FileEnv* env, const TargetConfig& t, const FormatRequest& request) {
  TargetClaim claim;
  claim.config = t;
  const bool reformat = request.reformat.count(t.id) > 0;
  auto formatting = [&]() -> Result<TargetClaim> {
    claim.format = true;
    claim.incarnation = RandomNonZero64();
    return claim;
  };
  if (!env->Exists(t.path)) {
    if (request.format_empty || reformat) return formatting();
    return Refuse(t, "the directory does not exist; start with --format to create and format it");
  }
  auto stamp = ReadTargetStamp(env, t.path);
  if (reformat) return formatting();
  if (!stamp.ok()) {
    return Refuse(t, stamp.status().message() + "; --format-target=" + std::to_string(t.id) +
                         " wipes and formats the directory");
  }
  if (!stamp->has_value()) {
    ASSIGN_OR_RETURN(auto names, env->ListDir(t.path));
    bool empty = std::all_of(names.begin(), names.end(), IgnoredEntry);
    if (empty && request.format_empty) return formatting();
    if (empty) {
      return Refuse(t,
                    "the directory has no Shoal stamp (" + std::string(kTargetStampName) +
                        "): a new disk, or one whose contents were lost. Start with --format to format it; chunks "
                        "it held before read as lost (EIO), never as zeros");
    }
    return Refuse(t, "the directory holds files but no Shoal stamp (" + std::string(kTargetStampName) +
                         "): not a Shoal target, or the wrong path. --format-target=" + std::to_string(t.id) +
                         " wipes and formats it");
  }
  const TargetStamp& s = **stamp;
  if (s.target_id != t.id) {
    return Refuse(t, "the directory is stamped for target " + std::to_string(s.target_id) +
                         " (a swapped or misconfigured disk); fix the targets config, or --format-target=" +
                         std::to_string(t.id) + " wipes and formats it");
  }
  claim.stamp = s;
  claim.incarnation = s.incarnation;
  return claim;
}

Result<TargetStamp> SettleTarget(FileEnv* env, TargetClaim& claim, const std::string& cluster_uuid,
                                 uint64_t lost_below_inode) {
  const TargetConfig& t = claim.config;
  if (!IsUuid(cluster_uuid)) return Refuse(t, "meta did not name a valid cluster UUID ('" + cluster_uuid + "')");
  if (claim.format) {
    RETURN_IF_ERROR(MakeDirsDurably(env, t.path));
    RETURN_IF_ERROR(WipeTarget(env, t.path));
    TargetStamp s{cluster_uuid, t.id, claim.incarnation, lost_below_inode};
    RETURN_IF_ERROR(WriteTargetStamp(env, t.path, s));
    if (lost_below_inode > 0) {
      LOG_WARN("{}: formatted for cluster {} (incarnation {:016x}); chunks it held of inodes below {} read as lost",
               Where(t), cluster_uuid, claim.incarnation, lost_below_inode);
    } else {
      LOG_INFO("{}: formatted for cluster {} (incarnation {:016x})", Where(t), cluster_uuid, claim.incarnation);
    }
    claim.format = false;
    claim.stamp = s;
    return s;
  }
  TargetStamp& s = *claim.stamp;
  if (s.cluster_uuid != cluster_uuid) {
    return Refuse(t, "the directory is stamped for cluster " + s.cluster_uuid + ", but meta serves cluster " +
                         cluster_uuid + " (a disk of another cluster, or meta was re-initialised); --format-target=" +
                         std::to_string(t.id) + " wipes and formats it");
  }
  if (lost_below_inode > s.lost_below_inode) {
    TargetStamp grown = s;
    grown.lost_below_inode = lost_below_inode;
    RETURN_IF_ERROR(WriteTargetStamp(env, t.path, grown));
    s = grown;
  }
  return s;
}

}  // namespace shoal::storage
