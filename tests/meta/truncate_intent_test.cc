// Truncate intents: a size change checked at meta (check_only) before storage
// cuts the chunks is committed as authorised, whatever happens to the
// caller's rights in between; one never committed is applied when its
// client's session ends, unless the file changed since. Both Kv backends.
#include <gtest/gtest.h>

#include "tests/meta/meta_store_fixture.h"

namespace shoal::meta {
namespace {

constexpr uint64_t kClient = 0xC1;
constexpr uint32_t kOwner = 1000;

proto::RequestId Rid(uint64_t id) {
  proto::RequestId r;
  r.set_client_id(kClient);
  r.set_request_id(id);
  r.set_oldest_pending(id);
  return r;
}

proto::SetAttrReq Truncate(uint64_t ino, uint64_t size, const Caller& c) {
  proto::SetAttrReq req;
  *req.mutable_caller() = c;
  req.set_ino(ino);
  req.set_set_size(true);
  req.set_size(size);
  return req;
}

template <typename B>
class TruncateIntentTest : public MetaStoreTest<B> {
 protected:
  // A 100-byte file owned by kOwner, mode 0644, in a directory anyone may write.
  uint64_t OwnedFile(const std::string& name) {
    auto dir = this->store_->Mkdir(Root(), kRootIno, "d", 0777);
    EXPECT_TRUE(dir.ok()) << dir.status().ToString();
    auto a = this->store_->Create(User(kOwner, kOwner), dir->ino(), name, 0644, true);
    if (!a.ok()) ADD_FAILURE() << a.status().ToString();
    if (!a.ok()) return 0;
    EXPECT_TRUE(this->store_->UpdateLength(a->ino(), 100).ok());
    return a->ino();
  }
  Status Check(uint64_t ino, uint64_t size, uint64_t id, const Caller& c = User(kOwner, kOwner)) {
    proto::SetAttrReq req = Truncate(ino, size, c);
    req.set_check_only(true);
    *req.mutable_rid() = Rid(id);
    return this->store_->SetAttr(req).status();
  }
  Result<Attr> Commit(uint64_t ino, uint64_t size, uint64_t intent, uint64_t id) {
    proto::SetAttrReq req = Truncate(ino, size, User(kOwner, kOwner));
    req.set_intent(intent);
    *req.mutable_rid() = Rid(id);
    return this->store_->SetAttr(req);
  }
  void Chmod(uint64_t ino, uint32_t mode) {
    proto::SetAttrReq req;
    *req.mutable_caller() = User(kOwner, kOwner);
    req.set_ino(ino);
    req.set_set_mode(true);
    req.set_mode(mode);
    ASSERT_TRUE(this->store_->SetAttr(req).ok());
  }
  uint64_t Size(uint64_t ino) { return this->store_->GetAttr(ino)->size(); }
  int Intents() {
    int n = 0;
    EXPECT_TRUE(this->kv_->Scan(Cf::kOpenFiles, "t", "", [&](std::string_view k, std::string_view) {
                  if (k.empty() || k[0] != 't') return false;
                  ++n;
                  return true;
                }).ok());
    return n;
  }
};

TYPED_TEST_SUITE(TruncateIntentTest, Backends);

TYPED_TEST(TruncateIntentTest, ACheckedTruncateCommitsAfterItsCallerLostWriteAccess) {
  uint64_t ino = this->OwnedFile("f");
  ASSERT_TRUE(this->Check(ino, 10, 1).ok());
  EXPECT_EQ(this->Intents(), 1);
  this->Chmod(ino, 0444);  // after the check, before the commit (storage has cut by now)
  // Without the intent the same change is refused now...
  EXPECT_EQ(this->store_->SetAttr(Truncate(ino, 10, User(kOwner, kOwner))).status().code(),
            proto::PERMISSION_DENIED);
  EXPECT_EQ(this->Size(ino), 100u);
  // ...with it, the size follows the chunks that were cut.
  auto a = this->Commit(ino, 10, /*intent=*/1, /*id=*/2);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->size(), 10u);
  EXPECT_EQ(this->Size(ino), 10u);
  EXPECT_EQ(this->Intents(), 0);
  // The session's end finds nothing left to apply.
  ASSERT_TRUE(this->store_->UpdateLength(ino, 50).ok());
  ASSERT_TRUE(this->store_->CloseSession(kClient).ok());
  EXPECT_EQ(this->Size(ino), 50u);
}

TYPED_TEST(TruncateIntentTest, AnIntentNeverCommittedIsAppliedWhenItsSessionEnds) {
  uint64_t ino = this->OwnedFile("f");
  ASSERT_TRUE(this->Check(ino, 7, 1).ok());
  EXPECT_EQ(this->Size(ino), 100u);  // a check changes nothing by itself
  ASSERT_TRUE(this->store_->CloseSession(kClient).ok());  // the client died after cutting
  EXPECT_EQ(this->Size(ino), 7u);
  EXPECT_EQ(this->Intents(), 0);
}

TYPED_TEST(TruncateIntentTest, AnIntentOvertakenByALaterChangeIsDropped) {
  uint64_t ino = this->OwnedFile("f");
  ASSERT_TRUE(this->Check(ino, 7, 1).ok());
  ASSERT_TRUE(this->store_->UpdateLength(ino, 300).ok());  // written after the (abandoned) truncate
  ASSERT_TRUE(this->store_->CloseSession(kClient).ok());
  EXPECT_EQ(this->Size(ino), 300u);
  EXPECT_EQ(this->Intents(), 0);
}

TYPED_TEST(TruncateIntentTest, ARefusedCheckLeavesNoIntent) {
  uint64_t ino = this->OwnedFile("f");
  EXPECT_EQ(this->Check(ino, 0, 1, User(2000, 2000)).code(), proto::PERMISSION_DENIED);
  EXPECT_EQ(this->Intents(), 0);
  // A commit naming it is checked as usual.
  proto::SetAttrReq req = Truncate(ino, 0, User(2000, 2000));
  req.set_intent(1);
  *req.mutable_rid() = Rid(2);
  EXPECT_EQ(this->store_->SetAttr(req).status().code(), proto::PERMISSION_DENIED);
  ASSERT_TRUE(this->store_->CloseSession(kClient).ok());
  EXPECT_EQ(this->Size(ino), 100u);
}

TYPED_TEST(TruncateIntentTest, AnIntentSurvivesARestartOfMeta) {
  uint64_t ino = this->OwnedFile("f");
  ASSERT_TRUE(this->Check(ino, 3, 1).ok());
  this->store_ = std::make_unique<MetaStore>(this->kv_.get(), [] { return std::vector<uint32_t>{1}; });
  ASSERT_TRUE(this->store_->Init().ok());
  this->Chmod(ino, 0400);
  auto a = this->Commit(ino, 3, 1, 2);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(this->Size(ino), 3u);
}

}  // namespace
}  // namespace shoal::meta
