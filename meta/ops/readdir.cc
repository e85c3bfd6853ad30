#include <unistd.h>

#include <algorithm>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<std::vector<DirEntryRow>> MetaStore::ReadDir(const Caller& c, uint64_t ino, const std::string& start_after,
                                                    uint32_t limit, bool plus, bool* eof) {
  ASSIGN_OR_RETURN(Attr dir, LoadDir(ino));
  RETURN_IF_ERROR(CheckAccess(dir, c, R_OK));
  limit = std::clamp<uint32_t>(limit, 1, 8192);
  std::string prefix = InodeKey(ino);
  std::string after = start_after.empty() ? std::string() : DirentKey(ino, start_after);
  std::vector<DirEntryRow> rows;
  Status bad;
  *eof = true;
  RETURN_IF_ERROR(kv_->Scan(Cf::kDirents, prefix, after, [&](std::string_view k, std::string_view v) {
    if (rows.size() == limit) {
      *eof = false;
      return false;
    }
    DirEntryRow r;
    r.name.assign(k.substr(prefix.size()));
    if (!ParseDirent(v, &r.ino, &r.type)) {
      bad = Error(proto::INTERNAL, "corrupt directory entry");
      return false;
    }
    rows.push_back(std::move(r));
    return true;
  }));
  RETURN_IF_ERROR(bad);
  if (plus) {
    for (auto& r : rows) {
      auto a = LoadInode(r.ino);
      if (a.ok()) r.attr = std::move(a).value();  // raced with an unlink: leave attr empty
    }
  }
  return rows;
}

}  // namespace shoal::meta
