#include "meta/meta_store.h"

namespace shoal::meta {

Result<std::vector<MetaStore::Reclaim>> MetaStore::PendingReclaims(size_t max, uint64_t after_ino) {
  std::vector<Reclaim> out;
  Status bad;
  std::string after = after_ino == 0 ? std::string() : InodeKey(after_ino);
  RETURN_IF_ERROR(kv_->Scan(Cf::kDeleteQueue, "", after, [&](std::string_view k, std::string_view v) {
    Reclaim r;
    r.ino = 0;
    for (int i = 0; i < 8 && i < static_cast<int>(k.size()); ++i) r.ino = (r.ino << 8) | static_cast<uint8_t>(k[i]);
    proto::ReclaimEntry e;
    if (k.size() != 8 || !e.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      bad = Error(proto::INTERNAL, "corrupt delete-queue entry");
      return false;
    }
    r.layout = std::move(*e.mutable_layout());
    r.unlinked_at_ms = e.unlinked_at_ms();
    out.push_back(std::move(r));
    return out.size() < max;
  }));
  RETURN_IF_ERROR(bad);
  return out;
}

Status MetaStore::FinishReclaim(uint64_t ino) {
  KvBatch b;
  b.Delete(Cf::kDeleteQueue, InodeKey(ino));
  return kv_->Apply(b).status();
}

}  // namespace shoal::meta
