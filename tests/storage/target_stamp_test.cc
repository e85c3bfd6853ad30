// The target stamp's text form, and whether a server may serve a directory:
// refusal of unstamped, foreign and wrong-id targets, and formatting.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/random_id.h"
#include "storage/target_claim.h"
#include "storage/target_stamp.h"

namespace shoal::storage {
namespace {

namespace fs = std::filesystem;

TargetStamp Sample() { return {"0f1e2d3c-4b5a-4697-8877-665544332211", 101, 0x8c1d2e3f4a5b6c7dULL, 4242}; }

TEST(TargetStampTest, EncodeThenParseGivesTheSameStamp) {
  TargetStamp s = Sample();
  auto parsed = ParseTargetStamp(EncodeTargetStamp(s));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, s);
  // Every field reaches the text: a stamp that differs in one parses differently.
  TargetStamp other = s;
  other.incarnation = 0xffffffffffffffffULL;
  other.lost_below_inode = 0;
  EXPECT_EQ(*ParseTargetStamp(EncodeTargetStamp(other)), other);
}

TEST(TargetStampTest, ParseRefusesAnythingButAWholeStamp) {
  const std::string good = EncodeTargetStamp(Sample());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty file"},
      {good.substr(0, good.size() / 2), "cut short"},
      {replace("format = 1", "format = 2"), "newer format"},
      {replace("cluster_uuid = 0f1e2d3c", "cluster_uuid = 0f1e2d3"), "short uuid"},
      {replace("target_id = 101", "target_id = 0"), "target 0"},
      {replace("target_id = 101", "target_id = 101x"), "trailing garbage"},
      {replace("target_id = 101", "target_id = 4294967296"), "id too large"},
      {replace("incarnation = 8c1d2e3f4a5b6c7d", "incarnation = 0000000000000000"), "zero incarnation"},
      {replace("incarnation = 8c1d2e3f4a5b6c7d", "incarnation = 8c1d2e3f"), "short incarnation"},
      {replace("lost_below_inode = 4242", "lost_below_inode = -1"), "negative"},
      {good + "target_id = 102\n", "repeated key"},
      {good + "colour = blue\n", "unknown key"},
      {good + "garbage\n", "not key = value"},
  };
  for (const auto& [text, why] : bad) {
    auto r = ParseTargetStamp(text);
    EXPECT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().code(), proto::INVALID_ARGUMENT) << why;
  }
}

class TargetClaimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/claim_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    target_ = {101, root_ + "/t101"};
  }
  void TearDown() override { fs::remove_all(root_); }

  static void Touch(const std::string& path) { std::ofstream(path) << "x"; }

  // Claims and settles `t` as a start would, with meta answering `uuid` and `lost_below`.
  Result<TargetStamp> Start(const TargetConfig& t, const FormatRequest& req, uint64_t lost_below = 0) {
    ASSIGN_OR_RETURN(TargetClaim claim, ClaimTarget(env_, t, req));
    return SettleTarget(env_, claim, uuid_, lost_below);
  }
  static FormatRequest Format() { return {true, {}}; }
  static FormatRequest Reformat(uint32_t id) { return {false, {id}}; }

  FileEnv* env_ = RealFileEnv();
  std::string root_;
  TargetConfig target_;
  std::string uuid_ = NewUuid();
};

TEST_F(TargetClaimTest, MissingOrEmptyDirectoryIsRefusedWithoutFormat) {
  auto missing = ClaimTarget(env_, target_, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(target_.path), std::string::npos) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos) << missing.status().ToString();
  EXPECT_FALSE(fs::exists(target_.path));  // refusing creates nothing

  fs::create_directories(target_.path + "/lost+found");  // a fresh file system still counts as empty
  auto empty = ClaimTarget(env_, target_, {});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), proto::INVALID_ARGUMENT);
  EXPECT_NE(empty.status().message().find(target_.path), std::string::npos) << empty.status().ToString();
  EXPECT_NE(empty.status().message().find("no Shoal stamp"), std::string::npos) << empty.status().ToString();
  EXPECT_NE(empty.status().message().find("--format"), std::string::npos) << empty.status().ToString();
}

TEST_F(TargetClaimTest, FormatStampsAnEmptyTargetDurablyAndARestartKeepsIt) {
  auto stamp = Start(target_, Format(), 17);
  ASSERT_TRUE(stamp.ok()) << stamp.status().ToString();
  EXPECT_EQ(stamp->cluster_uuid, uuid_);
  EXPECT_EQ(stamp->target_id, 101u);
  EXPECT_NE(stamp->incarnation, 0u);
  EXPECT_EQ(stamp->lost_below_inode, 17u);
  auto on_disk = ReadTargetStamp(env_, target_.path);
  ASSERT_TRUE(on_disk.ok() && on_disk->has_value());
  EXPECT_EQ(**on_disk, *stamp);
  EXPECT_FALSE(fs::exists(TargetStampPath(target_.path) + ".tmp"));

  // A restart, even one that says --format again, keeps the stamp: no new incarnation.
  Touch(target_.path + "/a-chunk");
  auto again = Start(target_, Format(), 0);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->incarnation, stamp->incarnation);
  EXPECT_EQ(again->lost_below_inode, 17u);  // never shrinks
  EXPECT_TRUE(fs::exists(target_.path + "/a-chunk"));
  // A later, larger answer from meta is recorded durably.
  ASSERT_TRUE(Start(target_, {}, 99).ok());
  EXPECT_EQ((*ReadTargetStamp(env_, target_.path))->lost_below_inode, 99u);
}

TEST_F(TargetClaimTest, FormatIsRefusedForAnUnstampedDirectoryThatHoldsFiles) {
  fs::create_directories(target_.path);
  Touch(target_.path + "/target.id");  // e.g. a target of an older version, or the wrong path
  for (const auto& req : {FormatRequest{}, Format()}) {
    auto r = ClaimTarget(env_, target_, req);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(target_.path), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find("--format-target=101"), std::string::npos) << r.status().ToString();
  }
  EXPECT_TRUE(fs::exists(target_.path + "/target.id"));
  // Asked explicitly, it is wiped and formatted.
  ASSERT_TRUE(Start(target_, Reformat(101)).ok());
  EXPECT_FALSE(fs::exists(target_.path + "/target.id"));
  EXPECT_TRUE(ReadTargetStamp(env_, target_.path)->has_value());
}

TEST_F(TargetClaimTest, ATargetStampedForAnotherIdIsRefusedUntilReformatted) {
  TargetConfig other{301, target_.path};
  auto first = Start(other, Format());
  ASSERT_TRUE(first.ok());
  fs::create_directories(target_.path + "/chunks/00/0000000000000005");
  Touch(target_.path + "/chunks/00/0000000000000005/0");
  fs::create_directories(target_.path + "/lost+found");

  auto r = ClaimTarget(env_, target_, Format());  // --format does not touch a stamped target
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), proto::INVALID_ARGUMENT);
  EXPECT_NE(r.status().message().find(target_.path), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("stamped for target 301"), std::string::npos) << r.status().ToString();

  // --format-target=ID for another target does not apply to this one.
  EXPECT_FALSE(ClaimTarget(env_, target_, Reformat(999)).ok());

  auto formatted = Start(target_, Reformat(101), 7);
  ASSERT_TRUE(formatted.ok()) << formatted.status().ToString();
  EXPECT_EQ(formatted->target_id, 101u);
  EXPECT_NE(formatted->incarnation, first->incarnation);
  EXPECT_EQ(formatted->lost_below_inode, 7u);
  EXPECT_FALSE(fs::exists(target_.path + "/chunks"));  // the other target's chunks are gone
  EXPECT_TRUE(fs::exists(target_.path + "/lost+found"));
}

TEST_F(TargetClaimTest, ATargetOfAnotherClusterIsRefusedAfterMetaAnswers) {
  ASSERT_TRUE(Start(target_, Format()).ok());
  auto claim = ClaimTarget(env_, target_, {});
  ASSERT_TRUE(claim.ok());  // locally it looks fine: only meta knows the cluster
  auto r = SettleTarget(env_, *claim, NewUuid(), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), proto::INVALID_ARGUMENT);
  EXPECT_NE(r.status().message().find(target_.path), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("stamped for cluster " + uuid_), std::string::npos) << r.status().ToString();
  EXPECT_EQ((*ReadTargetStamp(env_, target_.path))->cluster_uuid, uuid_);  // untouched
}

TEST_F(TargetClaimTest, ACorruptStampIsRefused) {
  fs::create_directories(target_.path);
  std::ofstream(TargetStampPath(target_.path)) << "format = 1\ncluster_uuid = nope\n";
  auto r = ClaimTarget(env_, target_, Format());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(TargetStampPath(target_.path)), std::string::npos) << r.status().ToString();
}

// The real env with one failure armed: the next file Sync, Rename or SyncDir
// fails with EIO. (The shared fault env of the file seam covers crashes; this
// only needs one failing call.)
class FailingEnv : public FileEnv {
 public:
  enum class Fail { kNone, kSync, kRename, kSyncDir };
  Fail fail = Fail::kNone;

  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode, bool direct) override {
    ASSIGN_OR_RETURN(auto f, real_->Open(path, mode, direct));
    return std::unique_ptr<File>(new FailingFile(std::move(f), this));
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return Take(Fail::kRename) ? Error(proto::IO_ERROR, "injected") : real_->Rename(from, to);
  }
  Status Unlink(const std::string& p) override { return real_->Unlink(p); }
  Status MakeDir(const std::string& p) override { return real_->MakeDir(p); }
  Status RemoveDir(const std::string& p) override { return real_->RemoveDir(p); }
  Status SyncDir(const std::string& d) override {
    return Take(Fail::kSyncDir) ? Error(proto::IO_ERROR, "injected") : real_->SyncDir(d);
  }
  Status SyncFileSystem(const std::string& d) override { return real_->SyncFileSystem(d); }
  Result<std::vector<std::string>> ListDir(const std::string& d) override { return real_->ListDir(d); }
  bool Exists(const std::string& p) override { return real_->Exists(p); }

 private:
  class FailingFile : public File {
   public:
    FailingFile(std::unique_ptr<File> f, FailingEnv* env) : f_(std::move(f)), env_(env) {}
    int fd() const override { return f_->fd(); }
    Status PWrite(const void* d, size_t n, uint64_t o) override { return f_->PWrite(d, n, o); }
    Result<size_t> PRead(void* d, size_t n, uint64_t o) override { return f_->PRead(d, n, o); }
    Status Sync() override { return env_->Take(Fail::kSync) ? Error(proto::IO_ERROR, "injected") : f_->Sync(); }
    Result<uint64_t> Size() override { return f_->Size(); }

   private:
    std::unique_ptr<File> f_;
    FailingEnv* env_;
  };
  bool Take(Fail f) {
    if (fail != f) return false;
    fail = Fail::kNone;
    return true;
  }
  FileEnv* real_ = RealFileEnv();
};

TEST_F(TargetClaimTest, AStampThatCannotBeMadeDurableFailsTheStartAndLeavesTheOldOne) {
  FailingEnv env;
  ASSERT_TRUE(Start(target_, Format(), 5).ok());
  const TargetStamp before = **ReadTargetStamp(env_, target_.path);

  // Recording a larger loss: the sync or the rename fails -> an error, and
  // the stamp on disk is still the old, whole one.
  for (auto f : {FailingEnv::Fail::kSync, FailingEnv::Fail::kRename}) {
    auto claim = ClaimTarget(&env, target_, {});
    ASSERT_TRUE(claim.ok());
    env.fail = f;
    auto r = SettleTarget(&env, *claim, uuid_, 50);
    EXPECT_EQ(r.status().code(), proto::IO_ERROR);
    EXPECT_EQ(**ReadTargetStamp(env_, target_.path), before);
  }
  // The directory sync fails after the rename: still an error (the new name
  // is not known to be durable), never a silent OK.
  auto claim = ClaimTarget(&env, target_, {});
  ASSERT_TRUE(claim.ok());
  env.fail = FailingEnv::Fail::kSyncDir;
  EXPECT_EQ(SettleTarget(&env, *claim, uuid_, 50).status().code(), proto::IO_ERROR);

  // Formatting a new target whose stamp cannot be synced fails too.
  TargetConfig fresh{102, root_ + "/t102"};
  auto format = ClaimTarget(&env, fresh, Format());
  ASSERT_TRUE(format.ok());
  env.fail = FailingEnv::Fail::kSync;
  EXPECT_EQ(SettleTarget(&env, *format, uuid_, 0).status().code(), proto::IO_ERROR);
  EXPECT_FALSE(ReadTargetStamp(env_, fresh.path)->has_value());
  // Its leftover temporary file does not make it "non-empty": --format again works.
  auto retry = Start(fresh, Format());
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_FALSE(fs::exists(TargetStampPath(fresh.path) + ".tmp"));
}

}  // namespace
}  // namespace shoal::storage
