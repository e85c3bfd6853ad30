// MetaStoreTest: one MetaStore over each Kv backend (in memory and RocksDB in
// a fresh directory), for typed suites of the namespace operations.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "meta/meta_store.h"

namespace shoal::meta {

struct MemoryBackend {
  static std::unique_ptr<Kv> Open(const std::string&) { return NewMemoryKv(); }
};
struct RocksBackend {
  static std::unique_ptr<Kv> Open(const std::string& dir) { return std::move(OpenRocksKv(dir)).value(); }
};

inline Caller Root() { return Caller(); }
inline Caller User(uint32_t uid, uint32_t gid) {
  Caller c;
  c.set_uid(uid);
  c.set_gid(gid);
  return c;
}

template <typename B>
class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ms_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    kv_ = B::Open(dir_);
    store_ = std::make_unique<MetaStore>(kv_.get(), [this] { return chains_; });
    ASSERT_TRUE(store_->Init().ok());
  }
  void TearDown() override {
    store_.reset();
    kv_.reset();
    std::filesystem::remove_all(dir_);
  }
  uint64_t Mkdir(uint64_t parent, const std::string& name) { return store_->Mkdir(Root(), parent, name, 0755)->ino(); }
  uint64_t Create(uint64_t parent, const std::string& name) {
    return store_->Create(Root(), parent, name, 0644, true)->ino();
  }
  ErrorCode LookupCode(uint64_t parent, const std::string& name) {
    return store_->Lookup(Root(), parent, name).status().code();
  }
  std::vector<std::string> List(uint64_t dir) {
    bool eof = false;
    std::vector<std::string> names;
    std::string after;
    while (!eof) {
      auto rows = store_->ReadDir(Root(), dir, after, 3, false, &eof);
      EXPECT_TRUE(rows.ok());
      for (auto& r : *rows) names.push_back(r.name);
      if (!rows->empty()) after = rows->back().name;
    }
    return names;
  }

  std::string dir_;
  std::vector<uint32_t> chains_{1, 2, 3};
  std::unique_ptr<Kv> kv_;
  std::unique_ptr<MetaStore> store_;
};

using Backends = ::testing::Types<MemoryBackend, RocksBackend>;

}  // namespace shoal::meta
