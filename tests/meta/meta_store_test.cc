// Namespace semantics, run over both Kv backends.
#include "meta/meta_store.h"
#include "tests/meta/meta_store_fixture.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

namespace shoal::meta {
namespace {

TYPED_TEST_SUITE(MetaStoreTest, Backends);

TYPED_TEST(MetaStoreTest, CreateLookupAndLayoutPlacement) {
  auto& s = *this->store_;
  auto a = s.Create(Root(), kRootIno, "f", 0640, true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->type(), proto::REGULAR);
  EXPECT_EQ(a->layout().chunk_size(), kDefaultChunkSize);
  EXPECT_EQ(a->layout().stripe_width(), 3u);
  EXPECT_EQ(a->layout().chains_size(), 3);
  EXPECT_EQ(s.Create(Root(), kRootIno, "f", 0640, true).status().code(), proto::ALREADY_EXISTS);
  EXPECT_EQ(s.Create(Root(), kRootIno, "f", 0640, false)->ino(), a->ino());
  EXPECT_EQ(s.Lookup(Root(), kRootIno, "f")->ino(), a->ino());
  // Consecutive files start on different chains.
  auto b = s.Create(Root(), kRootIno, "g", 0640, true);
  EXPECT_NE(a->layout().chains(0), b->layout().chains(0));
}

TYPED_TEST(MetaStoreTest, RejectsBadNames) {
  auto& s = *this->store_;
  EXPECT_EQ(s.Create(Root(), kRootIno, std::string(256, 'a'), 0644, true).status().code(), proto::NAME_TOO_LONG);
  EXPECT_TRUE(s.Create(Root(), kRootIno, std::string(255, 'a'), 0644, true).ok());
  for (std::string bad : std::vector<std::string>{"", ".", "..", "a/b", std::string("a\0b", 3)})
    EXPECT_EQ(s.Mkdir(Root(), kRootIno, bad, 0755).status().code(), proto::INVALID_ARGUMENT) << bad;
}

TYPED_TEST(MetaStoreTest, DirectoryLayoutIsInherited) {
  auto& s = *this->store_;
  uint64_t d = this->Mkdir(kRootIno, "d");
  EXPECT_EQ(s.SetLayout(Root(), d, 1000, 2).status().code(), proto::INVALID_ARGUMENT);
  ASSERT_TRUE(s.SetLayout(Root(), d, 4 << 20, 2).ok());
  uint64_t sub = this->Mkdir(d, "sub");
  auto f = s.Create(Root(), sub, "f", 0644, true);
  EXPECT_EQ(f->layout().chunk_size(), 4u << 20);
  EXPECT_EQ(f->layout().stripe_width(), 2u);
  EXPECT_EQ(s.SetLayout(User(1000, 1000), d, 1 << 20, 1).status().code(), proto::NOT_PERMITTED);
}

TYPED_TEST(MetaStoreTest, UnlinkRmdirAndLinkCounts) {
  auto& s = *this->store_;
  uint64_t d = this->Mkdir(kRootIno, "d");
  EXPECT_EQ(s.GetAttr(kRootIno)->nlink(), 3u);
  uint64_t f = this->Create(d, "f");
  EXPECT_EQ(s.CountInodes(), 3u);  // root, d, f
  EXPECT_EQ(s.Rmdir(Root(), kRootIno, "d").code(), proto::NOT_EMPTY);
  EXPECT_EQ(s.Unlink(Root(), kRootIno, "d").code(), proto::IS_DIRECTORY);
  EXPECT_EQ(s.Rmdir(Root(), d, "f").code(), proto::NOT_DIRECTORY);
  ASSERT_TRUE(s.Link(Root(), f, kRootIno, "hard").ok());
  EXPECT_EQ(s.GetAttr(f)->nlink(), 2u);
  ASSERT_TRUE(s.Unlink(Root(), d, "f").ok());
  EXPECT_EQ(s.GetAttr(f)->nlink(), 1u);
  EXPECT_TRUE(s.PendingReclaims(10)->empty());
  ASSERT_TRUE(s.Unlink(Root(), kRootIno, "hard").ok());
  EXPECT_EQ(s.GetAttr(f).status().code(), proto::NOT_FOUND);
  auto q = s.PendingReclaims(10);
  ASSERT_EQ(q->size(), 1u);
  EXPECT_EQ((*q)[0].ino, f);
  EXPECT_EQ((*q)[0].layout.chains_size(), 3);
  // Pages by inode number: nothing queued after f.
  EXPECT_TRUE(s.PendingReclaims(10, f)->empty());
  EXPECT_EQ(s.PendingReclaims(10, f - 1)->size(), 1u);
  ASSERT_TRUE(s.FinishReclaim(f).ok());
  EXPECT_TRUE(s.PendingReclaims(10)->empty());
  ASSERT_TRUE(s.Rmdir(Root(), kRootIno, "d").ok());
  EXPECT_EQ(s.GetAttr(kRootIno)->nlink(), 2u);
  EXPECT_EQ(s.CountInodes(), 1u);
  // The count survives a restart.
  MetaStore again(this->kv_.get(), [] { return std::vector<uint32_t>{1}; });
  ASSERT_TRUE(again.Init().ok());
  EXPECT_EQ(again.CountInodes(), 1u);
  // A namespace without the counter gets it counted once.
  KvBatch drop;
  drop.Delete(Cf::kCluster, "inode_count");
  ASSERT_TRUE(this->kv_->Write(drop).ok());
  MetaStore counted(this->kv_.get(), [] { return std::vector<uint32_t>{1}; });
  ASSERT_TRUE(counted.Init().ok());
  EXPECT_EQ(counted.CountInodes(), 1u);
  EXPECT_EQ(s.Link(Root(), kRootIno, kRootIno, "x").status().code(), proto::NOT_PERMITTED);
}

TYPED_TEST(MetaStoreTest, RenameFilesAndDirectories) {
  auto& s = *this->store_;
  uint64_t a = this->Mkdir(kRootIno, "a");
  uint64_t b = this->Mkdir(kRootIno, "b");
  uint64_t f = this->Create(a, "f");
  uint64_t g = this->Create(b, "g");
  // Across directories, replacing a file: the replaced file is queued for reclaim.
  ASSERT_TRUE(s.Rename(Root(), a, "f", b, "g", false).ok());
  EXPECT_EQ(this->LookupCode(a, "f"), proto::NOT_FOUND);
  EXPECT_EQ(s.Lookup(Root(), b, "g")->ino(), f);
  EXPECT_EQ(s.GetAttr(g).status().code(), proto::NOT_FOUND);
  EXPECT_EQ(s.PendingReclaims(10)->size(), 1u);
  // No-replace.
  this->Create(b, "h");
  EXPECT_EQ(s.Rename(Root(), b, "g", b, "h", true).code(), proto::ALREADY_EXISTS);
  // Directory moves: parent link counts follow; never under itself.
  uint64_t sub = this->Mkdir(a, "sub");
  ASSERT_TRUE(s.Rename(Root(), a, "sub", b, "sub2", false).ok());
  EXPECT_EQ(s.GetAttr(a)->nlink(), 2u);
  EXPECT_EQ(s.GetAttr(b)->nlink(), 3u);
  EXPECT_EQ(s.GetAttr(sub)->parent(), b);
  EXPECT_EQ(s.Rename(Root(), kRootIno, "b", sub, "loop", false).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(s.Rename(Root(), kRootIno, "b", b, "self", false).code(), proto::INVALID_ARGUMENT);
  // Directory over a non-empty directory / over a file; file over a directory.
  this->Mkdir(a, "full");
  this->Create(s.Lookup(Root(), a, "full")->ino(), "x");
  EXPECT_EQ(s.Rename(Root(), b, "sub2", a, "full", false).code(), proto::NOT_EMPTY);
  EXPECT_EQ(s.Rename(Root(), b, "sub2", b, "h", false).code(), proto::NOT_DIRECTORY);
  EXPECT_EQ(s.Rename(Root(), b, "h", a, "full", false).code(), proto::IS_DIRECTORY);
  // Directory over an empty directory.
  this->Mkdir(a, "empty");
  ASSERT_TRUE(s.Rename(Root(), b, "sub2", a, "empty", false).ok());
  EXPECT_EQ(s.Lookup(Root(), a, "empty")->ino(), sub);
  EXPECT_EQ(s.GetAttr(a)->nlink(), 4u);  // full + empty(sub)
  EXPECT_EQ(s.GetAttr(b)->nlink(), 2u);
}

TYPED_TEST(MetaStoreTest, ReadDirPagesInNameOrderWithPlus) {
  auto& s = *this->store_;
  uint64_t d = this->Mkdir(kRootIno, "d");
  for (auto n : {"e", "b", "a", "d", "c", "f", "g"}) this->Create(d, n);
  EXPECT_EQ(this->List(d), (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
  bool eof = false;
  auto rows = s.ReadDir(Root(), d, "", 100, true, &eof);
  EXPECT_TRUE(eof);
  ASSERT_EQ(rows->size(), 7u);
  EXPECT_EQ((*rows)[0].attr.ino(), (*rows)[0].ino);
  EXPECT_EQ((*rows)[0].attr.type(), proto::REGULAR);
}

TYPED_TEST(MetaStoreTest, PermissionsFollowCallerIdentity) {
  auto& s = *this->store_;
  uint64_t d = s.Mkdir(Root(), kRootIno, "private", 0700)->ino();
  Caller alice = User(1000, 1000);
  EXPECT_EQ(s.Create(alice, d, "f", 0644, true).status().code(), proto::PERMISSION_DENIED);
  EXPECT_EQ(s.Lookup(alice, d, "f").status().code(), proto::PERMISSION_DENIED);
  bool eof;
  EXPECT_EQ(s.ReadDir(alice, d, "", 10, false, &eof).status().code(), proto::PERMISSION_DENIED);
  // Open checks the access mode.
  uint64_t f = s.Create(Root(), kRootIno, "ro", 0644, true)->ino();
  EXPECT_TRUE(s.Open(alice, f, O_RDONLY).ok());
  EXPECT_EQ(s.Open(alice, f, O_WRONLY).status().code(), proto::PERMISSION_DENIED);
  // chmod by a non-owner, chown by a non-root user.
  proto::SetAttrReq req;
  *req.mutable_caller() = alice;
  req.set_ino(f);
  req.set_set_mode(true);
  req.set_mode(0777);
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::NOT_PERMITTED);
  *req.mutable_caller() = Root();
  req.set_set_uid(true);
  req.set_uid(1000);
  auto a = s.SetAttr(req);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode(), 0777u);
  EXPECT_EQ(a->uid(), 1000u);
  proto::SetAttrReq chown;
  *chown.mutable_caller() = alice;
  chown.set_ino(f);
  chown.set_set_uid(true);
  chown.set_uid(0);
  EXPECT_EQ(s.SetAttr(chown).status().code(), proto::NOT_PERMITTED);
  // open(O_CREAT) of an existing file needs search permission on the
  // directory and the access asked for on the file itself.
  uint64_t searchable = s.Mkdir(Root(), kRootIno, "searchable", 0711)->ino();
  uint64_t inside = s.Create(Root(), searchable, "f", 0644, true)->ino();
  EXPECT_EQ(s.Create(alice, searchable, "f", 0644, false, O_RDONLY)->ino(), inside);
  EXPECT_EQ(s.Create(alice, searchable, "f", 0644, false, O_WRONLY).status().code(), proto::PERMISSION_DENIED);
  EXPECT_EQ(s.Create(alice, searchable, "f", 0644, false, O_RDONLY | O_TRUNC).status().code(),
            proto::PERMISSION_DENIED);
  EXPECT_EQ(s.Create(alice, searchable, "f", 0644, true, O_RDONLY).status().code(), proto::ALREADY_EXISTS);
  EXPECT_EQ(s.Create(alice, searchable, "g", 0644, false).status().code(), proto::PERMISSION_DENIED);
  // Sticky directories: only the owner removes.
  uint64_t tmp = s.Mkdir(Root(), kRootIno, "tmp", 01777)->ino();
  ASSERT_TRUE(s.Create(alice, tmp, "mine", 0644, true).ok());
  EXPECT_EQ(s.Unlink(User(1001, 1001), tmp, "mine").code(), proto::NOT_PERMITTED);
  EXPECT_TRUE(s.Unlink(alice, tmp, "mine").ok());
}

TYPED_TEST(MetaStoreTest, SpecialFilesHaveTypeModeAndRdevButNoLayout) {
  auto& s = *this->store_;
  Caller alice = User(1000, 1000);
  uint64_t d = s.Mkdir(Root(), kRootIno, "d", 0777)->ino();
  auto fifo = s.Mknod(alice, d, "fifo", proto::FIFO, 0640, 99);
  ASSERT_TRUE(fifo.ok()) << fifo.status().ToString();
  EXPECT_EQ(fifo->type(), proto::FIFO);
  EXPECT_EQ(fifo->mode(), 0640u);
  EXPECT_EQ(fifo->rdev(), 0u);  // only devices carry a number
  EXPECT_FALSE(fifo->has_layout());
  EXPECT_EQ(s.Mknod(alice, d, "sock", proto::SOCKET, 0755, 0)->type(), proto::SOCKET);
  // Devices need root; the name is checked first (EEXIST before EPERM, as Linux).
  EXPECT_EQ(s.Mknod(alice, d, "null", proto::CHAR_DEVICE, 0666, 0x103).status().code(), proto::NOT_PERMITTED);
  EXPECT_EQ(s.Mknod(alice, d, "fifo", proto::CHAR_DEVICE, 0666, 0x103).status().code(), proto::ALREADY_EXISTS);
  auto dev = s.Mknod(Root(), d, "null", proto::CHAR_DEVICE, 0666, 0x103);
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(s.GetAttr(dev->ino())->rdev(), 0x103u);
  EXPECT_EQ(s.Mknod(Root(), d, "blk", proto::BLOCK_DEVICE, 0660, 0x700)->type(), proto::BLOCK_DEVICE);
  EXPECT_EQ(s.Mknod(Root(), d, "x", proto::DIRECTORY, 0755, 0).status().code(), proto::INVALID_ARGUMENT);
  // mknod(S_IFREG) is an empty file that can hold data.
  auto reg = s.Mknod(alice, d, "reg", proto::REGULAR, 0644, 0);
  ASSERT_TRUE(reg.ok());
  EXPECT_TRUE(reg->has_layout());
  // Listing reports each type; unlinking frees the inode without a reclaim entry.
  bool eof;
  std::map<std::string, proto::FileType> types;
  auto rows = s.ReadDir(Root(), d, "", 100, false, &eof);
  ASSERT_TRUE(rows.ok());
  for (auto& r : *rows) types[r.name] = r.type;
  EXPECT_EQ(types["fifo"], proto::FIFO);
  EXPECT_EQ(types["null"], proto::CHAR_DEVICE);
  EXPECT_EQ(types["blk"], proto::BLOCK_DEVICE);
  EXPECT_EQ(types["sock"], proto::SOCKET);
  ASSERT_TRUE(s.Unlink(Root(), d, "null").ok());
  auto pending = s.PendingReclaims(100);
  ASSERT_TRUE(pending.ok());
  for (auto& r : *pending) EXPECT_NE(r.ino, dev->ino());
}

TYPED_TEST(MetaStoreTest, SetgidDirectoriesAndSetidClearing) {
  auto& s = *this->store_;
  Caller alice = User(1000, 1000);
  uint64_t g = s.Mkdir(Root(), kRootIno, "g", 0777)->ino();
  proto::SetAttrReq req;
  *req.mutable_caller() = Root();
  req.set_ino(g);
  req.set_set_gid(true);
  req.set_gid(4321);
  req.set_set_mode(true);
  req.set_mode(02777);
  ASSERT_TRUE(s.SetAttr(req).ok());
  // New entries take the directory's group; subdirectories also S_ISGID; a
  // setgid executable for a group alice is not in loses S_ISGID.
  auto f = s.Create(alice, g, "f", 02755, true);
  EXPECT_EQ(f->gid(), 4321u);
  EXPECT_EQ(f->mode(), 0755u);
  auto sub = s.Mkdir(alice, g, "sub", 0755);
  EXPECT_EQ(sub->gid(), 4321u);
  EXPECT_EQ(sub->mode(), 02755u);
  EXPECT_EQ(s.Mknod(alice, g, "p", proto::FIFO, 0644, 0)->gid(), 4321u);
  // A write by a non-root caller clears S_ISUID, and S_ISGID with group-execute.
  uint64_t x = s.Create(Root(), kRootIno, "x", 0777, true)->ino();
  proto::SetAttrReq chmod;
  *chmod.mutable_caller() = Root();
  chmod.set_ino(x);
  chmod.set_set_mode(true);
  chmod.set_mode(06777);
  ASSERT_TRUE(s.SetAttr(chmod).ok());
  Caller member = User(1000, 0);  // in the file's group (root's)
  EXPECT_EQ(s.UpdateLength(x, 10, nullptr)->mode(), 06777u);
  EXPECT_EQ(s.UpdateLength(x, 10, &member)->mode(), 0777u);
  chmod.set_mode(02767);  // setgid without group-execute stays for a member...
  ASSERT_TRUE(s.SetAttr(chmod).ok());
  EXPECT_EQ(s.UpdateLength(x, 10, &member)->mode(), 02767u);
  EXPECT_EQ(s.UpdateLength(x, 10, &alice)->mode(), 0767u);  // ...not for others
  // Anyone who may write may clear set-id bits, and only those (as a
  // truncate by a non-owner asks the kernel to).
  ASSERT_TRUE(s.SetAttr(chmod).ok());
  proto::SetAttrReq kill;
  *kill.mutable_caller() = alice;
  kill.set_ino(x);
  kill.set_set_mode(true);
  kill.set_mode(0767);
  EXPECT_EQ(s.SetAttr(kill)->mode(), 0767u);
  kill.set_mode(0777);
  EXPECT_EQ(s.SetAttr(kill).status().code(), proto::NOT_PERMITTED);
  // chown drops S_ISUID even when root does it.
  chmod.set_mode(04755);
  ASSERT_TRUE(s.SetAttr(chmod).ok());
  proto::SetAttrReq chown;
  *chown.mutable_caller() = Root();
  chown.set_ino(x);
  chown.set_set_uid(true);
  chown.set_uid(5);
  EXPECT_EQ(s.SetAttr(chown)->mode(), 0755u);
}

TYPED_TEST(MetaStoreTest, TruncateSymlinkAndLength) {
  auto& s = *this->store_;
  uint64_t f = this->Create(kRootIno, "f");
  ASSERT_EQ(s.UpdateLength(f, 100)->size(), 100u);
  EXPECT_EQ(s.UpdateLength(f, 50)->size(), 100u);  // length only grows through writes
  proto::SetAttrReq req;
  req.set_ino(f);
  req.set_set_size(true);
  req.set_size(10);
  EXPECT_EQ(s.SetAttr(req)->size(), 10u);
  req.set_ino(kRootIno);
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::IS_DIRECTORY);
  auto l = s.Symlink(Root(), kRootIno, "link", "f");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*s.Readlink(l->ino()), "f");
  EXPECT_EQ(s.Readlink(f).status().code(), proto::INVALID_ARGUMENT);
}

TYPED_TEST(MetaStoreTest, CheckOnlyRunsEveryCheckOfASizeChangeAndCommitsNothing) {
  auto& s = *this->store_;
  uint64_t f = this->Create(kRootIno, "f");  // root's, 0644
  ASSERT_EQ(s.UpdateLength(f, 100)->size(), 100u);
  const int64_t mtime = s.GetAttr(f)->mtime_ns(), ctime = s.GetAttr(f)->ctime_ns();
  proto::SetAttrReq req;
  req.set_ino(f);
  req.set_set_size(true);
  req.set_size(0);
  req.set_check_only(true);
  // A caller without write permission is refused, as the real change would be.
  *req.mutable_caller() = User(1000, 1000);
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::PERMISSION_DENIED);
  // An allowed change is answered with the stored attributes; nothing changes.
  *req.mutable_caller() = Root();
  auto ok = s.SetAttr(req);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->size(), 100u);
  EXPECT_EQ(ok->layout().chains_size(), 3);
  auto after = s.GetAttr(f);
  EXPECT_EQ(after->size(), 100u);
  EXPECT_EQ(after->mtime_ns(), mtime);
  EXPECT_EQ(after->ctime_ns(), ctime);
  // Validity checks run too: directories and symlinks have no size to change.
  req.set_ino(kRootIno);
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::IS_DIRECTORY);
  auto l = s.Symlink(Root(), kRootIno, "link", "f");
  req.set_ino(l->ino());
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::INVALID_ARGUMENT);
  req.set_ino(987654);
  EXPECT_EQ(s.SetAttr(req).status().code(), proto::NOT_FOUND);
  // The same request without check_only commits.
  req.set_ino(f);
  req.set_check_only(false);
  EXPECT_EQ(s.SetAttr(req)->size(), 0u);
  EXPECT_EQ(s.GetAttr(f)->size(), 0u);
}

TYPED_TEST(MetaStoreTest, NoChainsMeansNoFiles) {
  this->chains_.clear();
  EXPECT_EQ(this->store_->Create(Root(), kRootIno, "f", 0644, true).status().code(), proto::UNAVAILABLE);
}

}  // namespace
}  // namespace shoal::meta
