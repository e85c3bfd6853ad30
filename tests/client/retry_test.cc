// Retries that cannot lie: a metadata call whose reply is lost (the
// connection breaks after meta got the request) is retried by the client with
// the same request id, and meta answers it with the first result instead of
// running it again. Also: open files through libshoal on the in-process
// cluster.
#include <fcntl.h>
#include <gtest/gtest.h>

#include "tests/client/inproc_cluster.h"
#include "tests/common/eventually.h"

namespace shoal::testing {
namespace {

class RetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start());
    client_ = cluster_.Connect(cluster_.Options());
    ASSERT_NE(client_, nullptr);
  }
  uint64_t Requests(proto::Method m) const { return cluster_.meta_stats().requests[m % 256].load(); }
  // Meta saw both the first attempt and its retry. (The first attempt may
  // still be on its way through meta's worker pool when the retry has been
  // answered: then it is the one answered from the record.)
  bool SawTwice(proto::Method m) const {
    return testutil::Eventually([&] { return Requests(m) == 2; });
  }
  uint64_t Errors(proto::Method m) const { return cluster_.meta_stats().errors[m % 256].load(); }
  // The next metadata request reaches meta and its reply is lost. (The
  // client's connection exists already, so the frame is the request itself.)
  void LoseNextReply() { cluster_.MetaFaults().lose_reply_of_next_frames = 1; }
  bool FaultUsed() { return cluster_.MetaFaults().lose_reply_of_next_frames.load() == 0; }

  InprocCluster cluster_;
  std::unique_ptr<client::Client> client_;
  proto::Caller root_;
};

TEST_F(RetryTest, ACreateWhoseReplyIsLostSucceedsWithTheSameInode) {
  LoseNextReply();
  auto created = client_->Create(root_, 1, "f", 0644, /*exclusive=*/true);
  ASSERT_TRUE(created.ok()) << created.status().ToString() << " (a retry that ran again says EEXIST)";
  EXPECT_TRUE(FaultUsed());
  EXPECT_TRUE(SawTwice(proto::META_CREATE));  // the first attempt and its retry
  EXPECT_EQ(Errors(proto::META_CREATE), 0u);
  auto found = client_->Lookup(root_, 1, "f");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->ino(), created->ino());
  // One file, not two.
  auto page = client_->ReadDir(root_, 1, "", 100, false);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries_size(), 1);
}

TEST_F(RetryTest, AnUnlinkWhoseReplyIsLostSucceeds) {
  ASSERT_TRUE(client_->Create(root_, 1, "f", 0644, true).ok());
  LoseNextReply();
  Status st = client_->Unlink(root_, 1, "f");
  EXPECT_TRUE(st.ok()) << st.ToString() << " (a retry that ran again says ENOENT)";
  EXPECT_TRUE(FaultUsed());
  EXPECT_TRUE(SawTwice(proto::META_UNLINK));
  EXPECT_EQ(client_->Lookup(root_, 1, "f").status().code(), proto::NOT_FOUND);
}

TEST_F(RetryTest, MkdirRenameRmdirAndLinkWhoseRepliesAreLostSucceed) {
  LoseNextReply();
  auto d = client_->Mkdir(root_, 1, "d", 0755);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto f = client_->Create(root_, 1, "f", 0644, true);
  ASSERT_TRUE(f.ok());
  LoseNextReply();
  auto l = client_->Link(root_, f->ino(), d->ino(), "hard");
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->nlink(), 2u);  // linked once, not twice
  LoseNextReply();
  Status st = client_->Rename(root_, 1, "f", d->ino(), "g", false);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(client_->Unlink(root_, d->ino(), "g").ok());
  ASSERT_TRUE(client_->Unlink(root_, d->ino(), "hard").ok());
  LoseNextReply();
  st = client_->Rmdir(root_, 1, "d");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(FaultUsed());
  for (auto m : {proto::META_MKDIR, proto::META_LINK, proto::META_RENAME, proto::META_RMDIR}) {
    EXPECT_TRUE(SawTwice(m)) << proto::Method_Name(m);
    EXPECT_EQ(Errors(m), 0u) << proto::Method_Name(m);
  }
}

TEST_F(RetryTest, ACallThatFailedIsNotRememberedAsDone) {
  LoseNextReply();
  EXPECT_EQ(client_->Unlink(root_, 1, "missing").code(), proto::NOT_FOUND);
  ASSERT_TRUE(client_->Create(root_, 1, "missing", 0644, true).ok());
  // A new call, a new request id: it runs.
  EXPECT_TRUE(client_->Unlink(root_, 1, "missing").ok());
}

TEST_F(RetryTest, AnOpenFileSurvivesItsUnlinkByAnotherClientUntilReleased) {
  auto other = cluster_.Connect(cluster_.Options());
  ASSERT_NE(other, nullptr);
  uint64_t handle = 0;
  auto f = client_->Create(root_, 1, "f", 0644, true, O_RDWR, &handle);
  ASSERT_TRUE(f.ok());
  ASSERT_NE(handle, 0u);
  const std::string data(100000, 'x');
  ASSERT_TRUE(client_->Write(*f, 0, data.size(), reinterpret_cast<const uint8_t*>(data.data())).ok());
  ASSERT_TRUE(client_->UpdateLength(f->ino(), data.size()).ok());
  ASSERT_TRUE(other->Unlink(root_, 1, "f").ok());
  EXPECT_EQ(other->Lookup(root_, 1, "f").status().code(), proto::NOT_FOUND);
  EXPECT_EQ(cluster_.store().CountOrphans(), 1u);
  // Readable and writable by inode through the open, from either client.
  auto a = other->GetAttr(f->ino());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink(), 0u);
  EXPECT_EQ(a->size(), data.size());
  ASSERT_TRUE(client_->Write(*a, data.size(), 5, reinterpret_cast<const uint8_t*>("tail!")).ok());
  auto grown = client_->UpdateLength(f->ino(), data.size() + 5);
  ASSERT_TRUE(grown.ok()) << grown.status().ToString();
  std::string back(data.size() + 5, '\0');
  auto n = other->Read(*grown, 0, back.size(), reinterpret_cast<uint8_t*>(back.data()));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(back, data + "tail!");
  ASSERT_TRUE(client_->Release(f->ino(), handle).ok());
  EXPECT_EQ(cluster_.store().CountOrphans(), 0u);
  EXPECT_EQ(other->GetAttr(f->ino()).status().code(), proto::NOT_FOUND);
}

TEST_F(RetryTest, DestroyingAClientReleasesItsOpens) {
  auto other = cluster_.Connect(cluster_.Options());
  ASSERT_NE(other, nullptr);
  auto f = client_->Create(root_, 1, "f", 0644, true);
  ASSERT_TRUE(f.ok());
  uint64_t handle = 0;
  ASSERT_TRUE(other->Open(root_, f->ino(), O_RDONLY, &handle).ok());
  ASSERT_TRUE(client_->Unlink(root_, 1, "f").ok());
  EXPECT_EQ(cluster_.store().CountOrphans(), 1u);
  size_t sessions = cluster_.store().CountSessions();
  other.reset();  // closes its session
  EXPECT_EQ(cluster_.store().CountSessions(), sessions - 1);
  EXPECT_EQ(cluster_.store().CountOrphans(), 0u);
  EXPECT_EQ(client_->GetAttr(f->ino()).status().code(), proto::NOT_FOUND);
}

}  // namespace
}  // namespace shoal::testing
