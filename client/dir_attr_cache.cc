#include "client/dir_attr_cache.h"

namespace shoal::client {

std::optional<DirAttrCache::Hit> DirAttrCache::Get(uint64_t ino) {
  if (ttl_ms_ <= 0) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end()) return std::nullopt;
  int64_t left = ttl_ms_ - (clock_->NowMs() - it->second.stored_ms);
  if (left <= 0) {
    entries_.erase(it);
    return std::nullopt;
  }
  return Hit{it->second.attr, left};
}

uint64_t DirAttrCache::generation() {
  std::lock_guard<std::mutex> l(mu_);
  return generation_;
}

void DirAttrCache::MakeRoom(int64_t now) {
  if (entries_.size() < max_entries_) return;
  std::erase_if(entries_, [&](const auto& e) { return now - e.second.stored_ms >= ttl_ms_; });
  if (entries_.size() >= max_entries_) entries_.clear();
}

void DirAttrCache::Note(const proto::DirChanges& dirs, uint64_t generation) {
  if (ttl_ms_ <= 0) return;
  if (dirs.replayed()) return Clear();
  int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> l(mu_);
  if (generation != generation_) return;  // cleared while the call was out: this reply may be older
  for (uint64_t ino : dirs.removed()) {
    entries_.erase(ino);
    if (removed_.size() >= max_entries_) removed_.clear();
    removed_.insert(ino);
  }
  for (const proto::Attr& a : dirs.changed()) {
    // A late reply of a change made before the removal (inode numbers are
    // never reused: a removed directory stays removed).
    if (removed_.count(a.ino())) continue;
    auto it = entries_.find(a.ino());
    if (it != entries_.end()) {
      if (it->second.attr.ctime_ns() > a.ctime_ns()) continue;  // an older reply, late
      it->second = Entry{a, now};
      continue;
    }
    MakeRoom(now);
    entries_.emplace(a.ino(), Entry{a, now});
  }
}

void DirAttrCache::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  entries_.clear();
}

}  // namespace shoal::client
