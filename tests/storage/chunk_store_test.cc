// The ChunkStore contract, run against the io_uring O_DIRECT store and the
// in-memory store.
#include "storage/chunk_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>

#include "storage/chunk_format.h"

namespace shoal::storage {
namespace {

constexpr uint32_t kChunk = 256 << 10;

struct MemoryBackend {
  static std::unique_ptr<ChunkStore> Open(const std::string&) { return NewMemoryChunkStore(512); }
  static Status Corrupt(ChunkStore* s, const std::string&, uint64_t ino, uint64_t idx, uint32_t off) {
    return FlipStoredByte(s, ino, idx, off);
  }
  static constexpr bool kPersistent = false;
};

struct UringBackend {
  static std::unique_ptr<ChunkStore> Open(const std::string& dir) { return std::move(OpenUringChunkStore(dir)).value(); }
  static Status Corrupt(ChunkStore*, const std::string& dir, uint64_t ino, uint64_t idx, uint32_t off) {
    int fd = ::open(ChunkFilePath(dir, ino, idx).c_str(), O_RDWR);
    if (fd < 0) return Status::FromErrno(errno, "open");
    off_t pos = ChunkHeaderSize(kChunk) + off;
    uint8_t b;
    if (pread(fd, &b, 1, pos) != 1) return Error(proto::IO_ERROR, "pread");
    b ^= 0x5a;
    if (pwrite(fd, &b, 1, pos) != 1) return Error(proto::IO_ERROR, "pwrite");
    fsync(fd);
    close(fd);
    return Status::OK();
  }
  static constexpr bool kPersistent = true;
};

template <typename B>
class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    store_ = B::Open(dir_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Reads a batch and waits (with a deadline) for its completion.
  void ReadBatch(std::vector<ReadOp>& ops) {
    std::vector<ReadOp*> ptrs;
    for (auto& op : ops) ptrs.push_back(&op);
    std::promise<void> p;
    store_->Read(ptrs, [&] { p.set_value(); });
    ASSERT_EQ(p.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  }
  Result<std::string> Read(uint64_t ino, uint64_t idx, uint32_t off, uint32_t len) {
    std::vector<ReadOp> ops(1);
    ops[0].inode = ino;
    ops[0].index = idx;
    ops[0].offset = off;
    ops[0].length = len;
    ops[0].chunk_size = kChunk;
    ReadBatch(ops);
    if (!ops[0].status.ok()) return ops[0].status;
    return std::string(reinterpret_cast<const char*>(ops[0].data), len);
  }
  Result<uint64_t> WriteV(uint64_t ino, uint64_t idx, uint32_t off, const std::string& data,
                          uint32_t chunk = kChunk, uint64_t version = 0) {
    ChunkWrite w;
    w.inode = ino;
    w.index = idx;
    w.offset = off;
    w.data = reinterpret_cast<const uint8_t*>(data.data());
    w.length = static_cast<uint32_t>(data.size());
    w.chunk_size = chunk;
    w.version = version;
    return store_->Write(w);
  }
  Status Write(uint64_t ino, uint64_t idx, uint32_t off, const std::string& data) {
    return WriteV(ino, idx, off, data).status();
  }

  std::string dir_;
  std::unique_ptr<ChunkStore> store_;
};

using Backends = ::testing::Types<MemoryBackend, UringBackend>;
TYPED_TEST_SUITE(ChunkStoreTest, Backends);

std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

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

}  // namespace
}  // namespace shoal::storage
