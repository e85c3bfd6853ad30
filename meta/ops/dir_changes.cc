// What a request did to directories, reported in its reply (see
// MetaStore::DirChangeScope).
#include "meta/meta_store.h"

namespace shoal::meta {

namespace {
// The thread's current request: a thread-local for the same reason as the
// current call (requests.cc): the operations stay as they are.
thread_local MetaStore::DirChangeScope* current_scope = nullptr;
}  // namespace

MetaStore::DirChangeScope::DirChangeScope() : prev_(current_scope) { current_scope = this; }

MetaStore::DirChangeScope::~DirChangeScope() { current_scope = prev_; }

void MetaStore::DirChangeScope::Fill(proto::DirChanges* out) const {
  for (const auto& [ino, a] : changed_) *out->add_changed() = a;
  for (uint64_t ino : removed_) out->add_removed(ino);
  out->set_replayed(replayed_);
}

void MetaStore::NoteDirWritten(const Attr& a) {
  if (current_scope) current_scope->noted_changed_.push_back(a);
}

void MetaStore::NoteDirRemoved(uint64_t ino) {
  if (current_scope) current_scope->noted_removed_.push_back(ino);
}

void MetaStore::NoteBatchWritten(bool ok) {
  DirChangeScope* s = current_scope;
  if (!s) return;
  if (ok) {
    for (Attr& a : s->noted_changed_) {
      s->removed_.erase(a.ino());
      s->changed_[a.ino()] = std::move(a);
    }
    for (uint64_t ino : s->noted_removed_) {
      s->changed_.erase(ino);
      s->removed_.insert(ino);
    }
  }
  s->noted_changed_.clear();
  s->noted_removed_.clear();
}

void MetaStore::NoteReplayed() {
  if (current_scope) current_scope->replayed_ = true;
}

}  // namespace shoal::meta
