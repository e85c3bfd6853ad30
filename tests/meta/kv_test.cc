// The Kv contract, run against both backends.
#include "meta/kv.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace shoal::meta {
namespace {

struct MemoryBackend {
  static std::unique_ptr<Kv> Open(const std::string&) { return NewMemoryKv(); }
  static constexpr bool kPersistent = false;
};
struct RocksBackend {
  static std::unique_ptr<Kv> Open(const std::string& dir) { return std::move(OpenRocksKv(dir)).value(); }
  static constexpr bool kPersistent = true;
};

template <typename B>
class KvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/kv_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    kv_ = B::Open(dir_);
  }
  void TearDown() override {
    kv_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::vector<std::string> Keys(Cf cf, const std::string& prefix, const std::string& after = "") {
    std::vector<std::string> out;
    EXPECT_TRUE(kv_->Scan(cf, prefix, after, [&](std::string_view k, std::string_view) {
      out.emplace_back(k);
      return true;
    }).ok());
    return out;
  }
  std::string dir_;
  std::unique_ptr<Kv> kv_;
};

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;
TYPED_TEST_SUITE(KvTest, Backends);

TYPED_TEST(KvTest, GetPutDeleteInColumnFamilies) {
  EXPECT_EQ(this->kv_->Get(Cf::kInodes, "a").status().code(), proto::NOT_FOUND);
  KvBatch b;
  b.Put(Cf::kInodes, "a", "1");
  b.Put(Cf::kDirents, "a", "2");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "a"), "1");
  EXPECT_EQ(*this->kv_->Get(Cf::kDirents, "a"), "2");
  EXPECT_EQ(this->kv_->Get(Cf::kCluster, "a").status().code(), proto::NOT_FOUND);
  KvBatch d;
  d.Delete(Cf::kInodes, "a");
  d.Put(Cf::kInodes, "b", std::string("x\0y", 3));
  ASSERT_TRUE(this->kv_->Write(d).ok());
  EXPECT_EQ(this->kv_->Get(Cf::kInodes, "a").status().code(), proto::NOT_FOUND);
  EXPECT_EQ(*this->kv_->Get(Cf::kInodes, "b"), std::string("x\0y", 3));
}

TYPED_TEST(KvTest, ScanIsOrderedPrefixedAndResumable) {
  KvBatch b;
  for (auto k : {"p/c", "p/a", "q/a", "p/b", "o/z", "p/"}) b.Put(Cf::kDirents, k, "v");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/"), (std::vector<std::string>{"p/", "p/a", "p/b", "p/c"}));
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/", "p/a"), (std::vector<std::string>{"p/b", "p/c"}));
  EXPECT_EQ(this->Keys(Cf::kDirents, "p/", "p/c"), std::vector<std::string>{});
  EXPECT_EQ(this->Keys(Cf::kDirents, "").size(), 6u);
  int seen = 0;
  ASSERT_TRUE(this->kv_->Scan(Cf::kDirents, "", "", [&](std::string_view, std::string_view) { return ++seen < 2; }).ok());
  EXPECT_EQ(seen, 2);
}

TYPED_TEST(KvTest, WritesSurviveReopen) {
  if (!TypeParam::kPersistent) GTEST_SKIP() << "the in-memory backend is not persistent by design";
  KvBatch b;
  b.Put(Cf::kDeleteQueue, "k", "v");
  ASSERT_TRUE(this->kv_->Write(b).ok());
  this->kv_.reset();
  this->kv_ = TypeParam::Open(this->dir_);
  EXPECT_EQ(*this->kv_->Get(Cf::kDeleteQueue, "k"), "v");
}

}  // namespace
}  // namespace shoal::meta
