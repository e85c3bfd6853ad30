// The two chunk store backends and a fixture over them, shared by the
// store's contract and concurrency tests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>

#include "storage/chunk_format.h"
#include "storage/chunk_store.h"

namespace shoal::storage::store_test {


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
  // Every write goes to its chunk file at once (no write journal), for tests
  // of what happens to those files.
  static std::unique_ptr<ChunkStore> OpenFilesOnly(const std::string& dir) {
    UringOptions o;
    o.journal_bytes = 0;
    return std::move(OpenUringChunkStore(dir, o)).value();
  }
  static Status Corrupt(ChunkStore* s, const std::string& dir, uint64_t ino, uint64_t idx, uint32_t off) {
    if (Status st = ApplyJournaledWrites(s); !st.ok()) return st;  // the bytes to damage are in the file

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
 public:  // public: test threads call the helpers
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
  Result<std::string> Read(uint64_t ino, uint64_t idx, uint32_t off, uint32_t len, uint32_t chunk = kChunk) {
    std::vector<ReadOp> ops(1);
    ops[0].inode = ino;
    ops[0].index = idx;
    ops[0].offset = off;
    ops[0].length = len;
    ops[0].chunk_size = chunk;
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
inline std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace shoal::storage::store_test
