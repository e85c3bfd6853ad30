// The fault env's own model: what each injected fault does to the disk, and
// what a power cut keeps (storage/fault_file_env.h). The chunk store's
// behaviour under these faults is tested in chunk_store_fault_test.cc.
#include "storage/fault_file_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/aligned_buffer.h"

namespace shoal::storage {
namespace {

using Fault = FaultFileEnv::Fault;
using Call = FaultFileEnv::Call;

class FaultFileEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(::testing::TempDir() + "/ffe_" + std::to_string(getpid()) + "_" +
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name())
                .lexically_normal()
                .string();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    env_ = std::make_unique<FaultFileEnv>(RealFileEnv(), root_);
  }
  void TearDown() override {
    env_.reset();
    std::filesystem::remove_all(root_);
  }

  std::string P(const std::string& rel) const { return root_ + "/" + rel; }

  // Creates (or empties) `rel` and writes `data` into it; syncs the data when
  // `sync`. The name is not made durable.
  void Put(const std::string& rel, const std::string& data, bool sync) {
    auto f = env_->Open(P(rel), OpenMode::kCreateTrunc, /*direct=*/false);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->PWrite(data.data(), data.size(), 0).ok());
    if (sync) {
      ASSERT_TRUE((*f)->Sync().ok());
    }
  }
  // The file's bytes as the real file system has them; "<missing>" when absent.
  std::string Disk(const std::string& rel) const {
    std::ifstream in(P(rel), std::ios::binary);
    if (!in) return "<missing>";
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void SyncRoot() { ASSERT_TRUE(env_->SyncDir(root_).ok()); }
  void Crash() { ASSERT_TRUE(env_->Crash().ok()); }

  std::string root_;
  std::unique_ptr<FaultFileEnv> env_;
};

TEST_F(FaultFileEnvTest, SyncedDataAndSyncedNamesSurviveACrash) {
  Put("a", "durable", /*sync=*/true);
  SyncRoot();
  Crash();
  EXPECT_EQ(Disk("a"), "durable");
}

TEST_F(FaultFileEnvTest, DataNeverSyncedIsEmptyAfterACrash) {
  Put("a", "lost", /*sync=*/false);
  SyncRoot();
  Crash();
  EXPECT_EQ(Disk("a"), "");
}

TEST_F(FaultFileEnvTest, WritesAfterTheLastSyncAreDropped) {
  {
    auto f = env_->Open(P("a"), OpenMode::kCreateExcl, false);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite("first", 5, 0).ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE((*f)->PWrite("SECOND", 6, 2).ok());
  }
  SyncRoot();
  EXPECT_EQ(Disk("a"), "fiSECOND");
  Crash();
  EXPECT_EQ(Disk("a"), "first");
}

TEST_F(FaultFileEnvTest, ACreationNotFollowedBySyncDirIsUndoneEvenWithItsDataSynced) {
  Put("a", "synced data", /*sync=*/true);
  Crash();
  EXPECT_EQ(Disk("a"), "<missing>");
}

TEST_F(FaultFileEnvTest, TruncationOfADurableFileIsUndoneWithoutSync) {
  Put("a", "old", true);
  SyncRoot();
  Put("a", "", /*sync=*/false);  // O_TRUNC, never synced
  EXPECT_EQ(Disk("a"), "");
  Crash();
  EXPECT_EQ(Disk("a"), "old");
}

TEST_F(FaultFileEnvTest, FilesThatExistedBeforeTheEnvAreDurableAsTheyWere) {
  { std::ofstream(P("pre")) << "before"; }
  {
    auto f = env_->Open(P("pre"), OpenMode::kCreateTrunc, false);  // exists: no name change
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite("after!", 6, 0).ok());
  }
  Crash();
  EXPECT_EQ(Disk("pre"), "before");
}

TEST_F(FaultFileEnvTest, AnUnlinkNotFollowedBySyncDirIsUndoneWithTheDurableBytes) {
  Put("a", "keep", true);
  SyncRoot();
  ASSERT_TRUE(env_->Unlink(P("a")).ok());
  EXPECT_EQ(Disk("a"), "<missing>");
  Crash();
  EXPECT_EQ(Disk("a"), "keep");

  ASSERT_TRUE(env_->Unlink(P("a")).ok());
  SyncRoot();
  Crash();
  EXPECT_EQ(Disk("a"), "<missing>");
}

TEST_F(FaultFileEnvTest, RenameOverAFileIsDurableWithItsDirectory) {
  Put("old", "old bytes", true);
  SyncRoot();
  Put("new.tmp", "new bytes", true);
  ASSERT_TRUE(env_->Rename(P("new.tmp"), P("old")).ok());
  EXPECT_EQ(Disk("old"), "new bytes");
  Crash();  // nothing synced since: the old file is back, the temporary gone
  EXPECT_EQ(Disk("old"), "old bytes");
  EXPECT_EQ(Disk("new.tmp"), "<missing>");

  Put("new.tmp", "new bytes", true);
  ASSERT_TRUE(env_->Rename(P("new.tmp"), P("old")).ok());
  SyncRoot();
  Crash();
  EXPECT_EQ(Disk("old"), "new bytes");
  EXPECT_EQ(Disk("new.tmp"), "<missing>");
}

TEST_F(FaultFileEnvTest, ARenameAcrossDirectoriesIsTwoNameChanges) {
  ASSERT_TRUE(env_->MakeDir(P("src")).ok());
  ASSERT_TRUE(env_->MakeDir(P("dst")).ok());
  SyncRoot();
  Put("src/f", "moved", true);
  ASSERT_TRUE(env_->SyncDir(P("src")).ok());

  // Only the destination synced: the file is under both names.
  ASSERT_TRUE(env_->Rename(P("src/f"), P("dst/f")).ok());
  ASSERT_TRUE(env_->SyncDir(P("dst")).ok());
  Crash();
  EXPECT_EQ(Disk("src/f"), "moved");
  EXPECT_EQ(Disk("dst/f"), "moved");

  // Only the source synced: the file is under neither.
  ASSERT_TRUE(env_->Unlink(P("dst/f")).ok());
  ASSERT_TRUE(env_->SyncDir(P("dst")).ok());
  ASSERT_TRUE(env_->Rename(P("src/f"), P("dst/f")).ok());
  ASSERT_TRUE(env_->SyncDir(P("src")).ok());
  Crash();
  EXPECT_EQ(Disk("src/f"), "<missing>");
  EXPECT_EQ(Disk("dst/f"), "<missing>");
}

TEST_F(FaultFileEnvTest, ADirectoryNotDurableInItsParentVanishesWithItsContents) {
  ASSERT_TRUE(env_->MakeDir(P("d")).ok());
  Put("d/f", "inside", true);
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());
  Crash();
  EXPECT_FALSE(std::filesystem::exists(P("d")));
}

TEST_F(FaultFileEnvTest, RemovedDirectoryComesBackWithItsUnsyncedUnlinksUndone) {
  ASSERT_TRUE(env_->MakeDir(P("d")).ok());
  SyncRoot();
  Put("d/f", "inside", true);
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());
  ASSERT_TRUE(env_->Unlink(P("d/f")).ok());
  ASSERT_TRUE(env_->RemoveDir(P("d")).ok());
  Crash();
  EXPECT_EQ(Disk("d/f"), "inside");

  // The removal made durable: the directory's unsynced unlinks go with it.
  ASSERT_TRUE(env_->Unlink(P("d/f")).ok());
  ASSERT_TRUE(env_->RemoveDir(P("d")).ok());
  SyncRoot();
  Crash();
  EXPECT_FALSE(std::filesystem::exists(P("d")));
}

TEST_F(FaultFileEnvTest, ADirectoryRemovedAndMadeAgainIsAnotherDirectory) {
  ASSERT_TRUE(env_->MakeDir(P("d")).ok());
  SyncRoot();
  Put("d/f", "old", true);
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());
  ASSERT_TRUE(env_->Unlink(P("d/f")).ok());  // never synced in the old d
  ASSERT_TRUE(env_->RemoveDir(P("d")).ok());
  ASSERT_TRUE(env_->MakeDir(P("d")).ok());
  SyncRoot();                                 // the old d is gone, the new one durable
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());    // syncs the new d, not the old one
  Crash();
  EXPECT_TRUE(std::filesystem::is_directory(P("d")));
  EXPECT_EQ(Disk("d/f"), "<missing>");  // not resurrected into the new directory

  // Neither the removal nor the new directory durable: the old one is back,
  // and its unsynced unlink is undone inside it.
  ASSERT_TRUE(env_->Unlink(P("d")) .code() != proto::OK);  // a directory: refused
  Put("d/g", "g", true);
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());
  ASSERT_TRUE(env_->Unlink(P("d/g")).ok());
  ASSERT_TRUE(env_->RemoveDir(P("d")).ok());
  ASSERT_TRUE(env_->MakeDir(P("d")).ok());
  ASSERT_TRUE(env_->SyncDir(P("d")).ok());
  Crash();
  EXPECT_EQ(Disk("d/g"), "g");
}

TEST_F(FaultFileEnvTest, CrashRefusesWhileAFileIsOpenAndHidesItsStash) {
  Put("a", "x", true);
  SyncRoot();
  ASSERT_TRUE(env_->Unlink(P("a")).ok());  // stashed
  auto names = env_->ListDir(root_);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty()) << (*names)[0];
  {
    auto f = env_->Open(P("b"), OpenMode::kCreateTrunc, false);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(env_->Crash().code(), proto::INVALID_ARGUMENT);
  }
  Crash();
  EXPECT_EQ(Disk("a"), "x");
  EXPECT_EQ(Disk("b"), "<missing>");
}

TEST_F(FaultFileEnvTest, WriteFaultsFireAfterNCallsForMTimesAndNameThePath) {
  auto f = env_->Open(P("a"), OpenMode::kCreateTrunc, false);
  ASSERT_TRUE(f.ok());
  env_->InjectFault(Fault::kWriteNoSpace, /*after=*/1, /*times=*/2);
  EXPECT_TRUE((*f)->PWrite("1", 1, 0).ok());
  Status st = (*f)->PWrite("2", 1, 1);
  EXPECT_EQ(st.code(), proto::NO_SPACE);
  EXPECT_NE(st.message().find(P("a")), std::string::npos) << st.message();
  EXPECT_EQ((*f)->PWrite("3", 1, 1).code(), proto::NO_SPACE);
  EXPECT_TRUE((*f)->PWrite("4", 1, 1).ok());
  EXPECT_EQ(env_->fired(Fault::kWriteNoSpace), 2u);
  EXPECT_EQ(Disk("a"), "14");

  env_->InjectFault(Fault::kWriteIoError);  // until cleared
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*f)->PWrite("5", 1, 2).code(), proto::IO_ERROR);
  env_->ClearFault(Fault::kWriteIoError);
  EXPECT_TRUE((*f)->PWrite("5", 1, 2).ok());
  EXPECT_EQ(Disk("a"), "145");
  EXPECT_EQ(env_->calls(Call::kPWrite), 8u);
}

TEST_F(FaultFileEnvTest, AShortWriteWritesAnAlignedPrefixThenFails) {
  auto f = env_->Open(P("a"), OpenMode::kCreateTrunc, /*direct=*/true);
  ASSERT_TRUE(f.ok());
  AlignedBuffer buf(3 * 4096);
  memset(buf.data(), 'z', 3 * 4096);
  env_->InjectFault(Fault::kShortWrite, 0, 1);
  Status st = (*f)->PWrite(buf.data(), 3 * 4096, 0);
  EXPECT_EQ(st.code(), proto::IO_ERROR);
  EXPECT_NE(st.message().find("short write"), std::string::npos);
  EXPECT_EQ(Disk("a"), std::string(4096, 'z'));  // half of 3 blocks, rounded down to one block
}

TEST_F(FaultFileEnvTest, SyncFaultsLeaveDataAndNamesNotDurable) {
  Put("a", "v1", true);
  SyncRoot();
  {
    auto f = env_->Open(P("a"), OpenMode::kCreateTrunc, false);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite("v2", 2, 0).ok());
    env_->InjectFault(Fault::kSyncIoError, 0, 1);
    EXPECT_EQ((*f)->Sync().code(), proto::IO_ERROR);
  }
  Put("b", "b", true);
  env_->InjectFault(Fault::kSyncDirIoError, 0, 1);
  Status st = env_->SyncDir(root_);
  EXPECT_EQ(st.code(), proto::IO_ERROR);
  EXPECT_NE(st.message().find(root_), std::string::npos);
  Crash();
  EXPECT_EQ(Disk("a"), "v1");
  EXPECT_EQ(Disk("b"), "<missing>");
}

TEST_F(FaultFileEnvTest, RenameAndCreateFaultsChangeNothing) {
  Put("a", "a", true);
  env_->InjectFault(Fault::kRenameIoError, 0, 1);
  EXPECT_EQ(env_->Rename(P("a"), P("b")).code(), proto::IO_ERROR);
  EXPECT_EQ(Disk("a"), "a");
  EXPECT_EQ(Disk("b"), "<missing>");

  env_->InjectFault(Fault::kCreateNoSpace, /*after=*/1, /*times=*/2);
  EXPECT_TRUE(env_->MakeDir(P("d1")).ok());
  EXPECT_EQ(env_->MakeDir(P("d2")).code(), proto::NO_SPACE);
  EXPECT_EQ(env_->Open(P("c"), OpenMode::kCreateExcl, false).status().code(), proto::NO_SPACE);
  EXPECT_TRUE(env_->Open(P("c"), OpenMode::kCreateExcl, false).ok());
  EXPECT_FALSE(std::filesystem::exists(P("d2")));
  // Opening for reading is not a creation.
  env_->InjectFault(Fault::kCreateNoSpace);
  EXPECT_TRUE(env_->Open(P("a"), OpenMode::kRead, false).ok());
}

TEST_F(FaultFileEnvTest, DieAfterKLetsKMutatingCallsThroughThenFailsEverything) {
  Put("a", "a", true);
  env_->ResetCounters();
  env_->DieAfter(2);
  EXPECT_TRUE(env_->MakeDir(P("d")).ok());                 // 1
  EXPECT_TRUE(env_->ListDir(root_).ok());                 // not mutating
  EXPECT_TRUE(env_->SyncDir(root_).ok());                 // 2
  EXPECT_FALSE(env_->dead());
  EXPECT_EQ(env_->Unlink(P("a")).code(), proto::IO_ERROR);  // 3: dies
  EXPECT_TRUE(env_->dead());
  EXPECT_EQ(env_->ListDir(root_).status().code(), proto::IO_ERROR);
  EXPECT_EQ(env_->Open(P("a"), OpenMode::kRead, false).status().code(), proto::IO_ERROR);
  EXPECT_EQ(env_->mutating_calls(), 3u);
  EXPECT_EQ(Disk("a"), "a");
  Crash();
  EXPECT_FALSE(env_->dead());
  EXPECT_TRUE(std::filesystem::exists(P("d")));
  EXPECT_EQ(Disk("a"), "a");  // the SyncDir made its name durable too; the unlink never ran
}

// The helper the target stamp is written with, cut at every point: the file
// holds its old contents or its new ones, never a prefix or nothing; and the
// new ones once the call returned OK.
TEST_F(FaultFileEnvTest, WriteFileDurablyIsAllOrNothingAtEveryPowerCut) {
  for (bool existed : {false, true}) {
    for (uint64_t k = 0;; ++k) {
      SCOPED_TRACE(std::string(existed ? "replacing" : "creating") + ", cut after " + std::to_string(k));
      std::filesystem::remove(P("stamp"));
      if (existed) {
        ASSERT_TRUE(WriteFileDurably(env_.get(), P("stamp"), "old stamp").ok());
      }
      env_->DieAfter(k);
      Status st = WriteFileDurably(env_.get(), P("stamp"), "new stamp, longer");
      const bool completed = !env_->dead();
      Crash();
      const std::string before = existed ? "old stamp" : "<missing>";
      if (st.ok())
        EXPECT_EQ(Disk("stamp"), "new stamp, longer");
      else
        EXPECT_TRUE(Disk("stamp") == before || Disk("stamp") == "new stamp, longer") << Disk("stamp");
      auto read = ReadWholeFile(env_.get(), P("stamp"));
      if (Disk("stamp") != "<missing>") {
        ASSERT_TRUE(read.ok());
        EXPECT_EQ(*read, Disk("stamp"));
      }
      if (completed) break;
      ASSERT_LT(k, 50u);
    }
  }
}

}  // namespace
}  // namespace shoal::storage
