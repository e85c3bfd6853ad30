// Reads of the O_DIRECT store on an event loop's engine with a registered
// buffer slab: small reads land in the slab (no heap buffer, READ_FIXED), the
// ones that do not fit or find no free slot use the heap, and every slot comes
// back when its op goes. A chunk file that must be opened first is opened off
// the loop.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>

#include "common/loop/event_loop.h"
#include "common/thread_pool.h"
#include "storage/chunk_store.h"
#include "storage/file_env.h"
#include "storage/uring_reader.h"
#include "tests/common/eventually.h"

namespace shoal::storage {
namespace {

constexpr uint32_t kChunk = 1 << 20;

class ReadSlabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/read_slab_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    auto s = OpenUringChunkStore(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    data_.resize(kChunk);
    for (size_t i = 0; i < data_.size(); ++i) data_[i] = static_cast<uint8_t>(i * 131 + 7);
    ChunkWrite w;
    w.inode = 5;
    w.data = data_.data();
    w.length = kChunk;
    w.chunk_size = kChunk;
    ASSERT_TRUE(store_->Write(w).ok());
    auto l = loop::EventLoop::Start({});
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    loop_ = std::move(l).value();
  }
  void TearDown() override {
    loop_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Reads (offset, length) pairs of inode 5 on the loop through `engine`.
  std::vector<ReadOp> Read(ReadEngine* engine, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
    std::vector<ReadOp> ops(ranges.size());
    std::promise<void> done;
    loop_->Post([&] {
      std::vector<ReadOp*> ptrs;
      for (size_t i = 0; i < ranges.size(); ++i) {
        ops[i].inode = 5;
        ops[i].offset = ranges[i].first;
        ops[i].length = ranges[i].second;
        ops[i].chunk_size = kChunk;
        ptrs.push_back(&ops[i]);
      }
      store_->ReadOn(std::move(ptrs), [&] { done.set_value(); }, engine);
    });
    // Bounded: a read that never completes fails the run instead of hanging it.
    if (done.get_future().wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << "a read did not complete within 60 s";
      std::abort();  // the store still holds `ops`
    }
    return ops;
  }
  void ExpectData(const std::vector<ReadOp>& ops) {
    for (const ReadOp& op : ops) {
      ASSERT_TRUE(op.status.ok()) << op.status.ToString();
      EXPECT_EQ(0, std::memcmp(op.data, data_.data() + op.offset, op.length)) << "offset " << op.offset;
    }
  }

  std::string dir_;
  std::unique_ptr<ChunkStore> store_;
  std::vector<uint8_t> data_;
  std::unique_ptr<loop::EventLoop> loop_;
};

// The real env, except that while held, an open for reading waits (as on a
// disk that is slow to bring a directory block in) until released.
class HeldOpenEnv : public FileEnv {
 public:
  void Hold() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard<std::mutex> l(mu_);
    return waiting_;
  }
  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode, bool direct) override {
    if (mode == OpenMode::kRead) {
      std::unique_lock<std::mutex> l(mu_);
      ++waiting_;
      cv_.wait(l, [this] { return !held_; });
      --waiting_;
    }
    return base_->Open(path, mode, direct);
  }
  Status Rename(const std::string& from, const std::string& to) override { return base_->Rename(from, to); }
  Status Unlink(const std::string& path) override { return base_->Unlink(path); }
  Status MakeDir(const std::string& path) override { return base_->MakeDir(path); }
  Status RemoveDir(const std::string& path) override { return base_->RemoveDir(path); }
  Status SyncDir(const std::string& dir) override { return base_->SyncDir(dir); }
  Status SyncFileSystem(const std::string& dir) override { return base_->SyncFileSystem(dir); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  bool Exists(const std::string& path) override { return base_->Exists(path); }

 private:
  FileEnv* base_ = RealFileEnv();
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};

TEST_F(ReadSlabTest, AChunkOpenThatWaitsOnTheDiskHoldsUpNoLoop) {
  // The store again, with nothing open: the next read must open the chunk file.
  HeldOpenEnv env;
  store_.reset();
  UringOptions o;
  o.env = &env;
  auto s = OpenUringChunkStore(dir_, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(s).value();
  ThreadPool helpers(1);
  LoopReadEngine::Options eo;
  eo.helpers = &helpers;
  LoopReadEngine engine(loop_.get(), eo);

  env.Hold();
  auto read = std::async(std::launch::async, [&] { return Read(&engine, {{8192, 4096}, {0, kChunk}}); });
  struct Unhold {  // also when an assertion fails: `read` waits for its open
    HeldOpenEnv& env;
    ~Unhold() { env.Release(); }
  } unhold{env};
  ASSERT_TRUE(testutil::Eventually([&] { return env.waiting() > 0; }));
  // While the open waits, the loop runs everything else.
  std::promise<void> ran;
  loop_->Post([&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the loop waited for a chunk file to open";
  env.Release();
  ASSERT_EQ(read.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ExpectData(read.get());
  store_.reset();  // before the env it uses
}

TEST_F(ReadSlabTest, SmallReadsUseTheSlabUntilItRunsOutThenTheHeap) {
  LoopReadEngine engine(loop_.get(), LoopReadEngine::Options{4, 16 << 10});
  ASSERT_EQ(engine.slabs().size(), 1u);
  BufferSlab* slab = engine.slabs()[0].get();
  EXPECT_TRUE(engine.registered()) << "io_uring_register_buffers refused a 64 KiB slab";
  ExpectData(Read(&engine, {{0, 4096}}));  // opens and caches the chunk file
  EXPECT_EQ(slab->free_slots(), 4u);

  uint64_t before = AlignedBuffer::allocations();
  {
    // Six small reads (one unaligned across two blocks) and one too big for a
    // slot: four take the slots, the other three the heap.
    std::vector<ReadOp> ops = Read(&engine, {{4096, 4096},
                                             {100, 5000},
                                             {65536, 4096},
                                             {8192, 8192},
                                             {131072, 4096},
                                             {200000, 100},
                                             {262144, 64 << 10}});
    ExpectData(ops);
    EXPECT_EQ(AlignedBuffer::allocations() - before, 3u);
    EXPECT_EQ(slab->free_slots(), 0u);
    int in_slab = 0;
    for (const ReadOp& op : ops) {
      in_slab += static_cast<bool>(op.slab_buffer);
      if (op.slab_buffer) {
        EXPECT_EQ(op.slab_buffer.buf_index(), 0);
      }
    }
    EXPECT_EQ(in_slab, 4);
  }
  EXPECT_EQ(slab->free_slots(), 4u);  // given back with the ops
}

TEST_F(ReadSlabTest, LargeReadsUseTheLargeSlabUpToItsSlotSize) {
  LoopReadEngine engine(loop_.get(), LoopReadEngine::Options{2, 16 << 10, 2, 512 << 10});
  ASSERT_EQ(engine.slabs().size(), 2u);
  BufferSlab* large = engine.slabs()[1].get();
  EXPECT_TRUE(engine.registered()) << "io_uring_register_buffers refused 1 MiB of slabs";
  ExpectData(Read(&engine, {{0, 4096}}));
  uint64_t before = AlignedBuffer::allocations();
  {
    // A 4 KiB read takes a small slot; 64 KiB and 512 KiB reads the large
    // ones; a third large read finds them taken and a whole-chunk read fits
    // none: both use the heap.
    std::vector<ReadOp> ops = Read(&engine, {{4096, 4096}, {65536, 65536}, {524288, 524288}, {1000, 70000}, {0, kChunk}});
    ExpectData(ops);
    EXPECT_EQ(ops[0].slab_buffer.buf_index(), 0);
    EXPECT_EQ(ops[1].slab_buffer.buf_index(), 1);
    EXPECT_EQ(ops[2].slab_buffer.buf_index(), 1);
    EXPECT_FALSE(ops[3].slab_buffer);
    EXPECT_FALSE(ops[4].slab_buffer);
    EXPECT_EQ(AlignedBuffer::allocations() - before, 2u);
    EXPECT_EQ(large->free_slots(), 0u);
  }
  EXPECT_EQ(large->free_slots(), 2u);
}

TEST_F(ReadSlabTest, WithoutASlabReadsUseTheHeap) {
  LoopReadEngine engine(loop_.get(), LoopReadEngine::Options{0, 16 << 10});
  EXPECT_TRUE(engine.slabs().empty());
  ExpectData(Read(&engine, {{0, 4096}}));
  uint64_t before = AlignedBuffer::allocations();
  ExpectData(Read(&engine, {{4096, 4096}, {100, 5000}}));
  EXPECT_EQ(AlignedBuffer::allocations() - before, 2u);
}

TEST_F(ReadSlabTest, ABufferOutlivesItsEngine) {
  std::vector<ReadOp> ops;
  {
    LoopReadEngine engine(loop_.get(), LoopReadEngine::Options{2, 16 << 10});
    ops = Read(&engine, {{0, 4096}, {12288, 4096}});
  }
  ExpectData(ops);  // the slab stays while its buffers do
}

}  // namespace
}  // namespace shoal::storage
