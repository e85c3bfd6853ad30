#include "client/dir_attr_cache.h"

#include <gtest/gtest.h>

namespace shoal::client {
namespace {

proto::Attr Dir(uint64_t ino, int64_t ctime_ns, uint32_t nlink = 2) {
  proto::Attr a;
  a.set_ino(ino);
  a.set_type(proto::DIRECTORY);
  a.set_ctime_ns(ctime_ns);
  a.set_mtime_ns(ctime_ns);
  a.set_nlink(nlink);
  return a;
}

proto::DirChanges Changed(std::initializer_list<proto::Attr> attrs) {
  proto::DirChanges d;
  for (const auto& a : attrs) *d.add_changed() = a;
  return d;
}

TEST(DirAttrCacheTest, AnswersForTheTimeToLiveOnlyAndSaysHowMuchIsLeft) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000);
  EXPECT_FALSE(cache.Get(5));
  cache.Note(Changed({Dir(5, 100, 3)}), cache.generation());
  ASSERT_TRUE(cache.Get(5));
  EXPECT_EQ(cache.Get(5)->attr.nlink(), 3u);
  EXPECT_EQ(cache.Get(5)->fresh_for_ms, 1000);
  clock.Advance(999);
  ASSERT_TRUE(cache.Get(5));
  EXPECT_EQ(cache.Get(5)->fresh_for_ms, 1) << "the kernel must not keep it past the time to live either";
  clock.Advance(1);
  EXPECT_FALSE(cache.Get(5));
}

TEST(DirAttrCacheTest, AReplyToACallSentBeforeAClearIsDropped) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000);
  uint64_t sent = cache.generation();  // a create goes out...
  cache.Clear();                        // ...another call in the directory fails...
  cache.Note(Changed({Dir(5, 100)}), sent);  // ...and the create's older view arrives
  EXPECT_FALSE(cache.Get(5));
  cache.Note(Changed({Dir(5, 200)}), cache.generation());
  EXPECT_TRUE(cache.Get(5));
}

TEST(DirAttrCacheTest, ARemovedDirectoryIsNotBroughtBackByALateReply) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000);
  proto::DirChanges removed;
  removed.add_removed(5);
  cache.Note(removed, cache.generation());
  cache.Note(Changed({Dir(5, 100)}), cache.generation());  // an unlink inside it, answered late
  EXPECT_FALSE(cache.Get(5));
  clock.Advance(5000);
  cache.Note(Changed({Dir(5, 100)}), cache.generation());
  EXPECT_FALSE(cache.Get(5)) << "inode numbers are never reused";
}

TEST(DirAttrCacheTest, ALateReplyDoesNotUndoANewerOne) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000);
  cache.Note(Changed({Dir(5, 200, 4)}), cache.generation());
  cache.Note(Changed({Dir(5, 100, 3)}), cache.generation());  // committed first, answered last
  EXPECT_EQ(cache.Get(5)->attr.ctime_ns(), 200);
  cache.Note(Changed({Dir(5, 300, 5)}), cache.generation());
  EXPECT_EQ(cache.Get(5)->attr.ctime_ns(), 300);
}

TEST(DirAttrCacheTest, RemovalsReplaysAndClearDropEntries) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000);
  cache.Note(Changed({Dir(5, 100), Dir(6, 100)}), cache.generation());
  proto::DirChanges removed;
  removed.add_removed(6);
  cache.Note(removed, cache.generation());
  EXPECT_TRUE(cache.Get(5));
  EXPECT_FALSE(cache.Get(6));

  proto::DirChanges replayed = Changed({Dir(7, 100)});
  replayed.set_replayed(true);  // what the first attempt did is unknown
  cache.Note(replayed, cache.generation());
  EXPECT_FALSE(cache.Get(5));
  EXPECT_FALSE(cache.Get(7));

  cache.Note(Changed({Dir(5, 100)}), cache.generation());
  cache.Clear();
  EXPECT_FALSE(cache.Get(5));
}

TEST(DirAttrCacheTest, StaysWithinItsSizeAndIsOffWithoutATimeToLive) {
  ManualClock clock;
  DirAttrCache cache(&clock, 1000, 4);
  for (uint64_t ino = 1; ino <= 10; ++ino) cache.Note(Changed({Dir(ino, 100)}), cache.generation());
  size_t held = 0;
  for (uint64_t ino = 1; ino <= 10; ++ino) held += cache.Get(ino) ? 1 : 0;
  EXPECT_LE(held, 4u);
  EXPECT_TRUE(cache.Get(10)) << "the newest entry is kept";

  DirAttrCache off(&clock, 0);
  off.Note(Changed({Dir(5, 100)}), off.generation());
  EXPECT_FALSE(off.Get(5));
}

}  // namespace
}  // namespace shoal::client
