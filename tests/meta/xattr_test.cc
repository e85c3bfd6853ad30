// Extended attributes at the meta store, over both Kv backends: Linux's
// namespaces, permissions, flags and limits.
#include <sys/stat.h>
#include <sys/xattr.h>

#include "common/xattr_name.h"
#include "tests/meta/meta_store_fixture.h"

namespace shoal::meta {
namespace {

template <typename B>
class XattrTest : public MetaStoreTest<B> {};
TYPED_TEST_SUITE(XattrTest, Backends);

TYPED_TEST(XattrTest, SetGetListRemoveWithFlags) {
  auto& s = *this->store_;
  uint64_t f = this->Create(kRootIno, "f");
  int64_t ctime = s.GetAttr(f)->ctime_ns();
  ASSERT_TRUE(s.SetXattr(Root(), f, "user.a", std::string("v\0w", 3), 0).ok());
  EXPECT_GT(s.GetAttr(f)->ctime_ns(), ctime - 1);
  EXPECT_EQ(*s.GetXattr(Root(), f, "user.a"), std::string("v\0w", 3));
  EXPECT_EQ(s.SetXattr(Root(), f, "user.a", "x", XATTR_CREATE).code(), proto::ALREADY_EXISTS);
  EXPECT_EQ(s.SetXattr(Root(), f, "user.b", "x", XATTR_REPLACE).code(), proto::ATTR_NOT_FOUND);
  ASSERT_TRUE(s.SetXattr(Root(), f, "user.a", "", XATTR_REPLACE).ok());
  EXPECT_EQ(*s.GetXattr(Root(), f, "user.a"), "");
  ASSERT_TRUE(s.SetXattr(Root(), f, "trusted.t", "1", XATTR_CREATE).ok());
  EXPECT_EQ(*s.ListXattr(Root(), f), (std::vector<std::string>{"trusted.t", "user.a"}));
  ASSERT_TRUE(s.RemoveXattr(Root(), f, "user.a").ok());
  EXPECT_EQ(s.RemoveXattr(Root(), f, "user.a").code(), proto::ATTR_NOT_FOUND);
  EXPECT_EQ(s.GetXattr(Root(), f, "user.a").status().code(), proto::ATTR_NOT_FOUND);
  EXPECT_EQ(*s.ListXattr(Root(), f), (std::vector<std::string>{"trusted.t"}));
  // Attributes of one inode are not another's (keys share a prefix scheme).
  uint64_t g = this->Create(kRootIno, "g");
  EXPECT_TRUE(s.ListXattr(Root(), g)->empty());
}

TYPED_TEST(XattrTest, NamesAndLimits) {
  auto& s = *this->store_;
  uint64_t f = this->Create(kRootIno, "f");
  EXPECT_EQ(s.SetXattr(Root(), f, "", "v", 0).code(), proto::OUT_OF_RANGE);
  EXPECT_EQ(s.SetXattr(Root(), f, "user." + std::string(251, 'n'), "v", 0).code(), proto::OUT_OF_RANGE);
  EXPECT_TRUE(s.SetXattr(Root(), f, "user." + std::string(250, 'n'), "v", 0).ok());
  EXPECT_EQ(s.SetXattr(Root(), f, "user.", "v", 0).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(s.SetXattr(Root(), f, "os2.x", "v", 0).code(), proto::NOT_SUPPORTED);
  EXPECT_EQ(s.SetXattr(Root(), f, "system.posix_acl_access", "v", 0).code(), proto::NOT_SUPPORTED);
  EXPECT_TRUE(s.SetXattr(Root(), f, "user.big", std::string(kXattrValueMax, 'v'), 0).ok());
  EXPECT_EQ(s.SetXattr(Root(), f, "user.big", std::string(kXattrValueMax + 1, 'v'), 0).code(), proto::ARG_TOO_BIG);
  EXPECT_EQ(s.SetXattr(Root(), f, "user.a", "v", 0x40).code(), proto::INVALID_ARGUMENT);
  // The names must fit one 64 KiB listing.
  uint64_t g = this->Create(kRootIno, "g");
  Status last;
  int stored = 0;
  for (int i = 0; i < 1000 && last.ok(); ++i) {
    char name[256];
    snprintf(name, sizeof(name), "user.%04d%s", i, std::string(240, 'x').c_str());
    last = s.SetXattr(Root(), g, name, "", 0);
    stored += last.ok();
  }
  EXPECT_EQ(last.code(), proto::NO_SPACE);
  EXPECT_EQ(stored, static_cast<int>(kXattrListMax / 250));
  size_t bytes = 0;
  auto listed = s.ListXattr(Root(), g);  // kept: a range-for would not extend the Result's life
  ASSERT_TRUE(listed.ok());
  for (const auto& n : *listed) bytes += n.size() + 1;
  EXPECT_LE(bytes, kXattrListMax);
}

TYPED_TEST(XattrTest, PermissionsFollowLinux) {
  auto& s = *this->store_;
  auto pub = s.Mkdir(Root(), kRootIno, "pub", 0777);
  ASSERT_TRUE(pub.ok());
  auto f = s.Create(User(1000, 1000), pub->ino(), "f", 0644, true);
  ASSERT_TRUE(f.ok());
  const uint64_t ino = f->ino();
  Caller owner = User(1000, 1000), other = User(2000, 2000);
  EXPECT_TRUE(s.SetXattr(owner, ino, "user.k", "v", 0).ok());
  EXPECT_EQ(*s.GetXattr(other, ino, "user.k"), "v");  // r-- for others
  EXPECT_EQ(s.SetXattr(other, ino, "user.k", "w", 0).code(), proto::PERMISSION_DENIED);
  EXPECT_EQ(s.RemoveXattr(other, ino, "user.k").code(), proto::PERMISSION_DENIED);
  // trusted.* is root's: others may not write it, do not see it, cannot read it.
  EXPECT_EQ(s.SetXattr(owner, ino, "trusted.t", "v", 0).code(), proto::NOT_PERMITTED);
  ASSERT_TRUE(s.SetXattr(Root(), ino, "trusted.t", "v", 0).ok());
  EXPECT_EQ(s.GetXattr(owner, ino, "trusted.t").status().code(), proto::ATTR_NOT_FOUND);
  EXPECT_EQ(*s.ListXattr(owner, ino), (std::vector<std::string>{"user.k"}));
  // user.* on a symlink: not settable (EPERM), reads find nothing.
  auto l = s.Symlink(owner, pub->ino(), "l", "f");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(s.SetXattr(owner, l->ino(), "user.k", "v", 0).code(), proto::NOT_PERMITTED);
  EXPECT_EQ(s.GetXattr(owner, l->ino(), "user.k").status().code(), proto::ATTR_NOT_FOUND);
  // A sticky directory takes user.* only from its owner, even with write permission.
  auto d = s.Mkdir(owner, pub->ino(), "d", 01777);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(s.SetXattr(other, d->ino(), "user.k", "v", 0).code(), proto::NOT_PERMITTED);
  EXPECT_TRUE(s.SetXattr(owner, d->ino(), "user.k", "v", 0).ok());
}

TYPED_TEST(XattrTest, FreedWithTheInode) {
  auto& s = *this->store_;
  uint64_t f = this->Create(kRootIno, "f");
  ASSERT_TRUE(s.SetXattr(Root(), f, "user.a", "1", 0).ok());
  ASSERT_TRUE(s.SetXattr(Root(), f, "user.b", "2", 0).ok());
  // A second link keeps the inode and its attributes.
  ASSERT_TRUE(s.Link(Root(), f, kRootIno, "f2").ok());
  ASSERT_TRUE(s.Unlink(Root(), kRootIno, "f").ok());
  EXPECT_EQ(*s.GetXattr(Root(), f, "user.b"), "2");
  ASSERT_TRUE(s.Unlink(Root(), kRootIno, "f2").ok());
  int left = 0;
  ASSERT_TRUE(this->kv_->Scan(Cf::kXattrs, "", "", [&](std::string_view, std::string_view) {
    ++left;
    return true;
  }).ok());
  EXPECT_EQ(left, 0);
}

}  // namespace
}  // namespace shoal::meta
