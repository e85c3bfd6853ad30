// The ChunkStore contract, run against the io_uring O_DIRECT store and the
// in-memory store.
#include "storage/chunk_store.h"

#include "tests/storage/store_fixture.h"

namespace shoal::storage {
namespace {

using store_test::ChunkStoreTest;
using store_test::Random;
using store_test::kChunk;
TYPED_TEST_SUITE(ChunkStoreTest, store_test::Backends);

TYPED_TEST(ChunkStoreTest, UnwrittenChunksAndTailsReadAsZeros) {
  EXPECT_EQ(*this->Read(1, 0, 0, 100), std::string(100, '\0'));
  ASSERT_TRUE(this->Write(1, 0, 10, "hello").ok());
  EXPECT_EQ(*this->Read(1, 0, 8, 9), std::string("\0\0hello\0\0", 9));
  EXPECT_EQ(*this->Read(1, 0, 100000, 5000), std::string(5000, '\0'));
}

TYPED_TEST(ChunkStoreTest, UnalignedWritesAndReadsMatchAModel) {
  std::string model(kChunk, '\0');
  std::mt19937 rng(42);
  for (int i = 0; i < 40; ++i) {
    uint32_t off = rng() % kChunk;
    uint32_t len = 1 + rng() % std::min<uint32_t>(kChunk - off, 50000);
    std::string data = Random(len, i);
    ASSERT_TRUE(this->Write(7, 3, off, data).ok());
    model.replace(off, len, data);
  }
  for (int i = 0; i < 100; ++i) {
    uint32_t off = rng() % kChunk;
    uint32_t len = 1 + rng() % (kChunk - off);
    auto got = this->Read(7, 3, off, len);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(*got, model.substr(off, len)) << off << "+" << len;
  }
}

TYPED_TEST(ChunkStoreTest, ManyReadsInOneBatch) {
  std::vector<std::string> chunks;
  for (uint64_t idx = 0; idx < 8; ++idx) {
    chunks.push_back(Random(kChunk, idx + 100));
    ASSERT_TRUE(this->Write(9, idx, 0, chunks.back()).ok());
  }
  std::vector<ReadOp> ops(1000);
  std::mt19937 rng(5);
  for (auto& op : ops) {
    op.inode = 9;
    op.index = rng() % 10;  // indexes 8 and 9 were never written
    op.offset = rng() % kChunk;
    op.length = 1 + rng() % (kChunk - op.offset);
    op.chunk_size = kChunk;
  }
  this->ReadBatch(ops);
  for (auto& op : ops) {
    ASSERT_TRUE(op.status.ok()) << op.status.ToString();
    std::string want = op.index < 8 ? chunks[op.index].substr(op.offset, op.length) : std::string(op.length, '\0');
    ASSERT_EQ(std::string(reinterpret_cast<const char*>(op.data), op.length), want);
  }
  EXPECT_GE(this->store_->stats().reads.load(), 1000u);
}

TYPED_TEST(ChunkStoreTest, FlippedByteFailsOnlyReadsOfItsBlock) {
  std::string data = Random(3 * kBlockSize, 1);
  ASSERT_TRUE(this->Write(2, 0, 0, data).ok());
  ASSERT_EQ(*this->Read(2, 0, 0, data.size()), data);  // warm any cache first
  ASSERT_TRUE(TypeParam::Corrupt(this->store_.get(), this->dir_, 2, 0, kBlockSize + 17).ok());
  auto bad = this->Read(2, 0, kBlockSize, 10);
  EXPECT_EQ(bad.status().code(), proto::CHECKSUM_MISMATCH);
  EXPECT_EQ(this->store_->stats().checksum_errors.load(), 1u);
  EXPECT_EQ(*this->Read(2, 0, 0, kBlockSize), data.substr(0, kBlockSize));
  EXPECT_EQ(*this->Read(2, 0, 2 * kBlockSize, 100), data.substr(2 * kBlockSize, 100));
  // A write that keeps the damaged block refuses to reseal it; a full overwrite repairs.
  EXPECT_EQ(this->Write(2, 0, 0, "x").code(), proto::CHECKSUM_MISMATCH);
  ASSERT_TRUE(this->Write(2, 0, 0, data).ok());
  EXPECT_EQ(*this->Read(2, 0, 0, data.size()), data);
}

TYPED_TEST(ChunkStoreTest, TruncateAndRemove) {
  for (uint64_t idx = 0; idx < 4; ++idx) ASSERT_TRUE(this->Write(5, idx, 0, Random(kChunk, idx)).ok());
  std::string c1 = Random(kChunk, 1);
  // Cut the file to 1.5 chunks.
  ASSERT_TRUE(this->store_->Truncate(5, kChunk + kChunk / 2, kChunk).ok());
  EXPECT_EQ(*this->Read(5, 0, 0, 10), Random(kChunk, 0).substr(0, 10));
  EXPECT_EQ(*this->Read(5, 1, kChunk / 2 - 5, 10), c1.substr(kChunk / 2 - 5, 5) + std::string(5, '\0'));
  EXPECT_EQ(*this->Read(5, 2, 0, 100), std::string(100, '\0'));
  // Growing again exposes zeros, not the old bytes.
  ASSERT_TRUE(this->Write(5, 1, kChunk - 1, "z").ok());
  EXPECT_EQ(*this->Read(5, 1, kChunk / 2, 10), std::string(10, '\0'));
  ASSERT_TRUE(this->store_->Remove(5).ok());
  EXPECT_EQ(*this->Read(5, 0, 0, 10), std::string(10, '\0'));
  EXPECT_TRUE(this->store_->Remove(5).ok());
  EXPECT_TRUE(this->store_->Truncate(5, 0, kChunk).ok());
}

TYPED_TEST(ChunkStoreTest, RemoveManyRemovesEachInodeNamedAndNoOther) {
  for (uint64_t ino : {5, 6, 7})
    for (uint64_t idx = 0; idx < 2; ++idx) ASSERT_TRUE(this->Write(ino, idx, 0, Random(kChunk, ino * 10 + idx)).ok());
  // 9 has no chunks; 5 is named twice.
  std::vector<uint64_t> failed;
  ASSERT_TRUE(this->store_->RemoveMany({7, 5, 9, 5}, &failed).ok());
  EXPECT_TRUE(failed.empty());
  for (uint64_t ino : {5, 7})
    for (uint64_t idx = 0; idx < 2; ++idx) EXPECT_EQ(*this->Read(ino, idx, 0, 10), std::string(10, '\0'));
  for (uint64_t idx = 0; idx < 2; ++idx) EXPECT_EQ(*this->Read(6, idx, 0, 10), Random(kChunk, 60 + idx).substr(0, 10));
  EXPECT_TRUE(this->store_->RemoveMany({5, 7}, &failed).ok());
  EXPECT_TRUE(this->store_->RemoveMany({}, &failed).ok());
  EXPECT_TRUE(failed.empty());
  // A removed inode can be written again.
  ASSERT_TRUE(this->Write(5, 0, 0, "again").ok());
  EXPECT_EQ(*this->Read(5, 0, 0, 5), "again");
}

TYPED_TEST(ChunkStoreTest, RejectsBadRanges) {
  EXPECT_EQ(this->Write(1, 0, kChunk - 1, "ab").code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(this->WriteV(1, 0, 0, "", 1000).status().code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(this->Read(1, 0, kChunk - 1, 2).status().code(), proto::INVALID_ARGUMENT);
  ASSERT_TRUE(this->Write(1, 0, 0, "abc").ok());
  std::vector<ReadOp> ops(1);
  ops[0].inode = 1;
  ops[0].length = 3;
  ops[0].chunk_size = kChunk * 2;  // disagrees with the stored chunk
  this->ReadBatch(ops);
  EXPECT_EQ(ops[0].status.code(), proto::INVALID_ARGUMENT);
}

TYPED_TEST(ChunkStoreTest, WritesSurviveReopen) {
  if (!TypeParam::kPersistent) GTEST_SKIP() << "the in-memory store is not persistent by design";
  std::string data = Random(10000, 3);
  ASSERT_TRUE(this->Write(4, 2, 300, data).ok());
  this->store_.reset();
  this->store_ = TypeParam::Open(this->dir_);
  EXPECT_EQ(*this->Read(4, 2, 300, data.size()), data);
}

TYPED_TEST(ChunkStoreTest, ClosingTheStoreCompletesEveryReadInFlight) {
  for (uint64_t idx = 0; idx < 4; ++idx) ASSERT_TRUE(this->Write(6, idx, 0, Random(kChunk, idx)).ok());
  constexpr int kBatches = 200;
  std::vector<std::vector<ReadOp>> batches(kBatches);
  for (auto& b : batches) b.resize(8);
  std::atomic<int> completed{0};
  std::mt19937 rng(3);
  for (auto& b : batches) {
    std::vector<ReadOp*> ptrs;
    for (auto& op : b) {
      op.inode = 6;
      op.index = rng() % 4;
      op.offset = rng() % (kChunk / 2);
      op.length = 1 + rng() % (kChunk / 2);
      op.chunk_size = kChunk;
      ptrs.push_back(&op);
    }
    this->store_->Read(ptrs, [&] { completed++; });
  }
  this->store_.reset();  // with reads still in flight
  EXPECT_EQ(completed.load(), kBatches);
  for (auto& b : batches)
    for (auto& op : b) EXPECT_TRUE(op.status.ok()) << op.status.ToString();
}

TYPED_TEST(ChunkStoreTest, EveryWriteAndCutCommitsTheNextVersion) {
  EXPECT_EQ(*this->WriteV(3, 0, 0, "abc"), 1u);
  EXPECT_EQ(*this->WriteV(3, 0, 100, "def"), 2u);
  ASSERT_TRUE(this->store_->Truncate(3, 50, kChunk).ok());  // shortens: version 3
  EXPECT_EQ(*this->WriteV(3, 0, 10, "g"), 4u);
  ASSERT_TRUE(this->store_->Truncate(3, kChunk, kChunk).ok());  // cuts nothing: no new version
  // A write naming its version (a chain's head chose it) commits only as the
  // very next one.
  EXPECT_EQ(*this->WriteV(3, 0, 0, "h", kChunk, 5), 5u);
  EXPECT_EQ(this->WriteV(3, 0, 0, "i", kChunk, 5).status().code(), proto::STALE_VERSION);
  EXPECT_EQ(this->WriteV(3, 0, 0, "j", kChunk, 9).status().code(), proto::STALE_VERSION);
  EXPECT_EQ(*this->Read(3, 0, 0, 3), "hbc");
  EXPECT_EQ(*this->WriteV(3, 1, 0, "k", kChunk, 1), 1u);  // a new chunk starts at 1
}

TYPED_TEST(ChunkStoreTest, MissingChunksOfInodesBelowTheLostMarkAreErrorsNotZeros) {
  ASSERT_TRUE(this->Write(200, 0, 0, "kept").ok());
  this->store_->SetLostBelow(100);
  // Inode 50 was written before the disk was lost: its chunks are gone.
  EXPECT_EQ(this->Read(50, 0, 0, 10).status().code(), proto::DATA_LOST);
  EXPECT_EQ(this->Write(50, 0, 10, "partial").code(), proto::DATA_LOST);
  EXPECT_EQ(*this->Read(200, 0, 0, 4), "kept");                     // present chunks read
  EXPECT_EQ(*this->Read(300, 0, 0, 3), std::string(3, '\0'));       // newer inodes have holes
  // A write that replaces the whole chunk leaves nothing lost in it.
  std::string whole = Random(kChunk, 9);
  ASSERT_TRUE(this->Write(50, 1, 0, whole).ok());
  EXPECT_EQ(*this->Read(50, 1, 0, kChunk), whole);
}

}  // namespace
}  // namespace shoal::storage
