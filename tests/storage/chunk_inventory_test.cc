// The chunk inventory tells a hole from a loss: on the O_DIRECT store, a chunk
// whose file went missing from an intact target is DATA_LOST, never zeros;
// never-written, cut-away and removed chunks still read as zeros, also when a
// cut stopped halfway; a file whose listing a power cut lost is served and
// listed again by its next write; a target from before the inventory gets one
// built from its files.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "storage/chunk_inventory.h"
#include "storage/chunk_layout.h"
#include "tests/storage/store_fixture.h"

namespace shoal::storage::store_test {
namespace {

namespace fs = std::filesystem;

class ChunkInventoryTest : public ChunkStoreTest<UringBackend> {
 public:
  // The chunk files are what these tests lose and damage: written at once.
  void SetUp() override {
    ChunkStoreTest<UringBackend>::SetUp();
    Reopen();
  }
  // A restart: the open-file cache is cold, the inventory read back from disk.
  void Reopen() {
    store_.reset();
    store_ = UringBackend::OpenFilesOnly(dir_);
  }
  // Closes the store and changes its inventory directly, as a crash at some
  // point of an operation would have left it; the caller reopens the store.
  void EditInventoryWhileClosed(const std::function<Status(ChunkInventory&)>& edit) {
    store_.reset();
    auto inv = ChunkInventory::Open(ChunkLayout(RealFileEnv(), dir_));
    ASSERT_TRUE(inv.ok()) << inv.status().ToString();
    ASSERT_TRUE(edit(**inv).ok());
  }
  void LoseFile(uint64_t ino, uint64_t idx) { ASSERT_TRUE(fs::remove(ChunkFilePath(dir_, ino, idx))); }
  ErrorCode ReadCode(uint64_t ino, uint64_t idx) { return Read(ino, idx, 0, 4096).status().code(); }
  std::string Zeros(size_t n) { return std::string(n, '\0'); }
};

TEST_F(ChunkInventoryTest, ListsCutsAndRemoves) {
  store_.reset();  // the inventory alone, over the same layout
  ChunkLayout layout(RealFileEnv(), dir_);
  {
    auto inv = ChunkInventory::Open(layout);
    ASSERT_TRUE(inv.ok()) << inv.status().ToString();
    for (uint64_t idx : {0, 1, 2, 7, 300}) ASSERT_TRUE((*inv)->Add(5, idx).ok());
    ASSERT_TRUE((*inv)->Add(6, 0).ok());
    ASSERT_TRUE((*inv)->Add(4, 9).ok());
    EXPECT_EQ(*(*inv)->List(5), (std::vector<uint64_t>{0, 1, 2, 7, 300}));
    // Under a cut mark a listed chunk is not lost; below it, it is.
    ASSERT_TRUE((*inv)->BeginCut(5, 2).ok());
    EXPECT_TRUE(*(*inv)->IsLost(5, 1));
    EXPECT_FALSE(*(*inv)->IsLost(5, 7));
    EXPECT_TRUE(*(*inv)->Contains(5, 7));
    ASSERT_TRUE((*inv)->EndCut(5, 2).ok());
    EXPECT_EQ(*(*inv)->List(5), (std::vector<uint64_t>{0, 1}));
    EXPECT_TRUE(*(*inv)->IsLost(5, 1));
    EXPECT_FALSE(*(*inv)->IsLost(5, 2));  // not listed
    // A mark left by a failed cut reaching lower survives a narrower cut's end.
    ASSERT_TRUE((*inv)->BeginCut(6, 0).ok());
    ASSERT_TRUE((*inv)->BeginCut(6, 3).ok());
    ASSERT_TRUE((*inv)->EndCut(6, 3).ok());
    EXPECT_FALSE(*(*inv)->IsLost(6, 0));
  }
  auto inv = ChunkInventory::Open(layout);  // reopened: as left
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(*(*inv)->List(5), (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(*(*inv)->List(6), (std::vector<uint64_t>{0}));
  EXPECT_FALSE(*(*inv)->IsLost(6, 0));
  EXPECT_EQ(*(*inv)->List(4), (std::vector<uint64_t>{9}));
  ASSERT_TRUE((*inv)->RemoveInode(6).ok());
  EXPECT_TRUE((*inv)->List(6)->empty());
  ASSERT_TRUE((*inv)->Add(6, 0).ok());
  EXPECT_TRUE(*(*inv)->IsLost(6, 0));  // the mark went with the inode
  EXPECT_TRUE(*(*inv)->Contains(4, 9));  // the neighbours keep theirs
  EXPECT_TRUE(*(*inv)->Contains(5, 0));
}

TEST_F(ChunkInventoryTest, AChunkFileLostFromAnIntactTargetIsDataLostNeverZeros) {
  const std::string a = Random(kChunk, 1), b = Random(5000, 2);
  ASSERT_TRUE(Write(9, 0, 0, a).ok());
  ASSERT_TRUE(Write(9, 1, 100, b).ok());
  ASSERT_TRUE(Write(9, 3, 0, b).ok());
  LoseFile(9, 1);
  Reopen();
  EXPECT_EQ(ReadCode(9, 1), proto::DATA_LOST);
  EXPECT_EQ(Read(9, 1, 100, 10).status().code(), proto::DATA_LOST);
  // A partial write would pass the missing bytes off as zeros: refused.
  EXPECT_EQ(Write(9, 1, 0, "x").code(), proto::DATA_LOST);
  EXPECT_EQ(ReadCode(9, 1), proto::DATA_LOST);
  // Everything else reads as before: the neighbours, and a hole between them.
  EXPECT_EQ(*Read(9, 0, 0, kChunk), a);
  EXPECT_EQ(*Read(9, 3, 0, 5000), b);
  EXPECT_EQ(*Read(9, 2, 0, 4096), Zeros(4096));
  // A whole-chunk write replaces what was lost.
  const std::string c = Random(kChunk, 3);
  ASSERT_TRUE(Write(9, 1, 0, c).ok());
  Reopen();
  EXPECT_EQ(*Read(9, 1, 0, kChunk), c);
}

TEST_F(ChunkInventoryTest, AnInodeDirectoryLostWholeIsDataLost) {
  ASSERT_TRUE(Write(77, 0, 0, Random(8192, 4)).ok());
  ASSERT_TRUE(Write(77, 2, 0, Random(8192, 5)).ok());
  store_.reset();
  ASSERT_GT(fs::remove_all(fs::path(ChunkFilePath(dir_, 77, 0)).parent_path()), 0u);
  store_ = UringBackend::OpenFilesOnly(dir_);
  EXPECT_EQ(ReadCode(77, 0), proto::DATA_LOST);
  EXPECT_EQ(ReadCode(77, 2), proto::DATA_LOST);
  EXPECT_EQ(*Read(77, 1, 0, 4096), Zeros(4096));
}

TEST_F(ChunkInventoryTest, CutAwayAndRemovedChunksReadAsZerosNotAsLost) {
  const std::string d = Random(kChunk, 6);
  for (uint64_t idx = 0; idx < 4; ++idx) ASSERT_TRUE(Write(12, idx, 0, d).ok());
  ASSERT_TRUE(store_->Truncate(12, kChunk + 4096, kChunk).ok());  // keeps chunk 0 and 4 KiB of chunk 1
  ASSERT_TRUE(Write(13, 0, 0, d).ok());
  ASSERT_TRUE(store_->Remove(13).ok());
  Reopen();
  EXPECT_EQ(*Read(12, 0, 0, kChunk), d);
  EXPECT_EQ(*Read(12, 1, 0, 8192), d.substr(0, 4096) + Zeros(4096));
  // The file grows again past the cut (truncate up, a sparse write): the cut
  // chunks are holes, not losses.
  EXPECT_EQ(*Read(12, 2, 0, 4096), Zeros(4096));
  EXPECT_EQ(*Read(12, 3, 0, 4096), Zeros(4096));
  ASSERT_TRUE(Write(12, 3, 4096, "y").ok());
  EXPECT_EQ(*Read(12, 3, 0, 4097), Zeros(4096) + "y");
  EXPECT_EQ(*Read(13, 0, 0, 4096), Zeros(4096));
  ASSERT_TRUE(Write(13, 0, 10, "z").ok());  // a removed inode's chunk starts anew
  EXPECT_EQ(*Read(13, 0, 0, 11), Zeros(10) + "z");
}

TEST_F(ChunkInventoryTest, ACutStoppedAfterItsFilesWentReadsAsHoles) {
  const std::string d = Random(kChunk, 7);
  for (uint64_t idx = 0; idx < 3; ++idx) ASSERT_TRUE(Write(20, idx, 0, d).ok());
  // What a crash in the middle of a truncate to one chunk leaves: the mark
  // made, the files unlinked, the listing not yet ended.
  EditInventoryWhileClosed([](ChunkInventory& inv) { return inv.BeginCut(20, 1); });
  LoseFile(20, 1);
  LoseFile(20, 2);
  store_ = UringBackend::OpenFilesOnly(dir_);
  EXPECT_EQ(*Read(20, 0, 0, kChunk), d);
  EXPECT_EQ(*Read(20, 1, 0, 4096), Zeros(4096));
  EXPECT_EQ(*Read(20, 2, 0, 4096), Zeros(4096));
  ASSERT_TRUE(Write(20, 2, 4096, "v").ok());  // a sparse write past the cut
  EXPECT_EQ(*Read(20, 2, 0, 4097), Zeros(4096) + "v");
  // A later cut of the inode reaching as low ends the mark: a loss reads as a
  // loss again.
  ASSERT_TRUE(store_->Truncate(20, kChunk, kChunk).ok());
  ASSERT_TRUE(Write(20, 1, 0, "q").ok());
  LoseFile(20, 1);
  Reopen();
  EXPECT_EQ(ReadCode(20, 1), proto::DATA_LOST);
}

TEST_F(ChunkInventoryTest, AFileWhoseListingWasLostIsServedAndListedAgainByItsNextWrite) {
  // A power cut inside the inventory's sync interval: the chunk's file is
  // durable (the write was acknowledged), its listing is not.
  const std::string d = Random(8192, 9);
  ASSERT_TRUE(Write(21, 0, 0, d).ok());
  EditInventoryWhileClosed([](ChunkInventory& inv) { return inv.RemoveInode(21); });
  store_ = UringBackend::OpenFilesOnly(dir_);
  EXPECT_EQ(*Read(21, 0, 0, 8192), d);
  auto v = WriteV(21, 0, 8192, "w");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 2u);  // built on the version that was there
  LoseFile(21, 0);
  Reopen();
  EXPECT_EQ(ReadCode(21, 0), proto::DATA_LOST);
}

TEST_F(ChunkInventoryTest, ATargetFromBeforeTheInventoryGetsOneBuiltFromItsFiles) {
  const std::string d = Random(6000, 8);
  ASSERT_TRUE(Write(30, 0, 0, d).ok());
  ASSERT_TRUE(Write(30, 5, 0, d).ok());
  ASSERT_TRUE(Write(0x1ff, 2, 0, d).ok());
  store_.reset();
  fs::remove_all(dir_ + "/inventory");  // as an older version left the target
  store_ = UringBackend::OpenFilesOnly(dir_);
  EXPECT_EQ(*Read(30, 0, 0, 6000), d);
  EXPECT_EQ(*Read(0x1ff, 2, 0, 6000), d);
  LoseFile(30, 5);
  LoseFile(0x1ff, 2);
  Reopen();
  EXPECT_EQ(ReadCode(30, 5), proto::DATA_LOST);
  EXPECT_EQ(ReadCode(0x1ff, 2), proto::DATA_LOST);
  EXPECT_EQ(*Read(30, 1, 0, 4096), Zeros(4096));
}

}  // namespace
}  // namespace shoal::storage::store_test
