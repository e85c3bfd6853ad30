#include "client/dir_attr_cache.h"

namespace shoal::client {

std::optional<proto::Attr> DirAttrCache::Get(uint64_t ino) {
  if (ttl_ms_ <= 0) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end()) return std::nullopt;
  if (clock_->NowMs() - it->second.stored_ms >= ttl_ms_) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.attr;
}

void DirAttrCache::Note(const proto::DirChanges& dirs) {
  if (ttl_ms_ <= 0) return;
  if (dirs.replayed()) return Clear();
  int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> l(mu_);
  for (uint64_t ino : dirs.removed()) entries_.erase(ino);
  for (const proto::Attr& a : dirs.changed()) {
    auto it = entries_.find(a.ino());
    if (it != entries_.end()) {
      if (it->second.attr.ctime_ns() > a.ctime_ns()) continue;  // an older reply, late
      it->second = Entry{a, now};
      continue;
    }
    if (entries_.size() >= max_entries_) {
      std::erase_if(entries_, [&](const auto& e) { return now - e.second.stored_ms >= ttl_ms_; });
      if (entries_.size() >= max_entries_) entries_.clear();
    }
    entries_.emplace(a.ino(), Entry{a, now});
  }
}

void DirAttrCache::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  entries_.clear();
}

}  // namespace shoal::client
