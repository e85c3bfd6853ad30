// The transfer pipeline against a remote file whose I/Os complete in an
// order the test chooses: a buffer must never be reused while an I/O on it
// can still move bytes.
#include "client/cli/transfer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

namespace shoal::cli {
namespace {

std::string Data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

// "" when equal, else where they first differ (gtest would print megabytes).
std::string Difference(const std::string& got, const std::string& want) {
  if (got == want) return "";
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "first difference at byte " + std::to_string(i) + " (sizes " + std::to_string(got.size()) + ", " +
         std::to_string(want.size()) + ")";
}

// A remote file in memory whose I/Os are held until a releaser thread
// completes them, in a random order: whenever every buffer of the transfer is
// out, or when no new I/O arrived for a while (the transfer waits for one in
// particular). A held write copies its source bytes only when it completes,
// and a held read fills its buffer only then — as a late send (a retry) or a
// late response would — so a buffer reused too early changes the result.
class HeldFile : public RemoteFile {
 public:
  HeldFile(std::string contents, int buffers, uint64_t seed, int fail_at = -1)
      : data_(std::move(contents)), buffers_(buffers), rng_(seed), fail_at_(fail_at) {
    releaser_ = std::thread([this] { ReleaseLoop(); });
  }
  ~HeldFile() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    releaser_.join();
  }

  void ReadAsync(uint64_t offset, size_t length, uint8_t* buf, client::IoCallback done) override {
    Hold(Io{false, offset, length, buf, nullptr, std::move(done)});
  }
  void WriteAsync(uint64_t offset, size_t length, const uint8_t* data, client::IoCallback done) override {
    Hold(Io{true, offset, length, nullptr, data, std::move(done)});
  }

  std::string contents() {
    std::lock_guard<std::mutex> l(mu_);
    return data_;
  }
  int issued() {
    std::lock_guard<std::mutex> l(mu_);
    return issued_;
  }
  int completed() {
    std::lock_guard<std::mutex> l(mu_);
    return completed_;
  }
  int max_held() {
    std::lock_guard<std::mutex> l(mu_);
    return max_held_;
  }
  int out_of_order() {
    std::lock_guard<std::mutex> l(mu_);
    return out_of_order_;
  }

 private:
  struct Io {
    bool write;
    uint64_t offset;
    size_t length;
    uint8_t* dst;
    const uint8_t* src;
    client::IoCallback done;
    int seq = 0;
  };

  void Hold(Io io) {
    std::lock_guard<std::mutex> l(mu_);
    io.seq = issued_++;
    held_.push_back(std::move(io));
    max_held_ = std::max(max_held_, static_cast<int>(held_.size()));
    cv_.notify_all();
  }

  void ReleaseLoop() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      int seen = issued_;
      // Quiet for 10 ms with I/Os held: the transfer waits for one of them.
      bool quiet = !cv_.wait_for(l, std::chrono::milliseconds(10), [&] {
        return stop_ || static_cast<int>(held_.size()) >= buffers_ || issued_ != seen;
      });
      if (stop_) break;
      if (held_.empty() || (!quiet && static_cast<int>(held_.size()) < buffers_)) continue;
      size_t pick = std::uniform_int_distribution<size_t>(0, held_.size() - 1)(rng_);
      Io io = std::move(held_[pick]);
      held_.erase(held_.begin() + static_cast<long>(pick));
      if (pick != 0) ++out_of_order_;
      Result<size_t> r = io.length;
      if (io.seq == fail_at_) {
        r = Error(proto::UNAVAILABLE, "injected");
      } else if (io.write) {
        if (data_.size() < io.offset + io.length) data_.resize(io.offset + io.length);
        std::memcpy(data_.data() + io.offset, io.src, io.length);
      } else {
        size_t n = io.offset >= data_.size() ? 0 : std::min(io.length, data_.size() - io.offset);
        std::memcpy(io.dst, data_.data() + io.offset, n);
        r = n;
      }
      ++completed_;
      l.unlock();
      io.done(std::move(r));  // outside the lock, as a real completion would
      l.lock();
    }
    for (auto& io : held_) io.done(Error(proto::CANCELLED, "test over"));
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::string data_;
  const int buffers_;
  std::mt19937_64 rng_;
  const int fail_at_;
  std::deque<Io> held_;
  int issued_ = 0, completed_ = 0, max_held_ = 0, out_of_order_ = 0;
  bool stop_ = false;
  std::thread releaser_;
};

// A pipe's read end that yields `data` (written by a thread, so any size works).
struct PipeSource {
  explicit PipeSource(const std::string& data) {
    signal(SIGPIPE, SIG_IGN);  // a reader that stops early makes the writer's write fail, not the test die
    EXPECT_EQ(pipe(fds), 0);
    writer = std::thread([this, data] {
      size_t off = 0;
      while (off < data.size()) {
        ssize_t n = ::write(fds[1], data.data() + off, data.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(fds[1]);
    });
  }
  ~PipeSource() {
    ::close(fds[0]);  // unblocks the writer if the reader stopped early
    writer.join();
  }
  int fds[2];
  std::thread writer;
};

// Collects a download in memory and checks it arrives in order, without gaps.
class MemorySink : public ByteSink {
 public:
  Status Take(uint64_t offset, const uint8_t* data, size_t length) override {
    EXPECT_EQ(offset, bytes.size());
    bytes.append(reinterpret_cast<const char*>(data), length);
    return Status::OK();
  }
  std::string bytes;
};

constexpr size_t kBlock = 4096;
constexpr int kBuffers = 6;

TransferOptions Options() {
  TransferOptions o;
  o.block_bytes = kBlock;
  o.buffers = kBuffers;
  o.progress_interval_ms = 5;
  return o;
}

TEST(TransferTest, UploadIsByteExactWhenWritesCompleteOutOfOrder) {
  const std::string src = Data(97 * kBlock + 123, 1);
  HeldFile remote("", kBuffers, 7);
  PipeSource pipe(src);
  uint64_t last_progress = 0;
  TransferOptions o = Options();
  o.progress = [&](uint64_t done) {
    EXPECT_GE(done, last_progress);
    last_progress = done;
  };
  auto n = Upload(pipe.fds[0], "pipe", remote, o);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, src.size());
  EXPECT_EQ(last_progress, src.size());
  EXPECT_EQ(Difference(remote.contents(), src), "");
  EXPECT_EQ(remote.completed(), remote.issued());
  // The test did exercise what it claims: a full pipeline, completions out of order.
  EXPECT_EQ(remote.max_held(), kBuffers);
  EXPECT_GT(remote.out_of_order(), 10);
}

TEST(TransferTest, DownloadIsByteExactAndInOrderWhenReadsCompleteOutOfOrder) {
  const std::string src = Data(113 * kBlock + 7, 2);
  HeldFile remote(src, kBuffers, 8);
  MemorySink sink;
  Status st = Download(remote, src.size(), sink, Options());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Difference(sink.bytes, src), "");
  EXPECT_EQ(remote.completed(), remote.issued());
  EXPECT_EQ(remote.max_held(), kBuffers);
  EXPECT_GT(remote.out_of_order(), 10);
}

TEST(TransferTest, AFailedWriteEndsTheUploadOnlyAfterEveryWriteInFlight) {
  const std::string src = Data(64 * kBlock, 3);
  HeldFile remote("", kBuffers, 9, /*fail_at=*/20);
  PipeSource pipe(src);
  auto n = Upload(pipe.fds[0], "pipe", remote, Options());
  EXPECT_EQ(n.status().code(), proto::UNAVAILABLE);
  // Nothing is left running on the transfer's buffers once it returned.
  EXPECT_EQ(remote.completed(), remote.issued());
  EXPECT_GT(remote.issued(), 20);
}

TEST(TransferTest, AFailedReadEndsTheDownloadAfterEveryReadInFlight) {
  const std::string src = Data(64 * kBlock, 4);
  HeldFile remote(src, kBuffers, 10, /*fail_at=*/30);
  MemorySink sink;
  EXPECT_EQ(Download(remote, src.size(), sink, Options()).code(), proto::UNAVAILABLE);
  EXPECT_EQ(remote.completed(), remote.issued());
  EXPECT_LE(sink.bytes.size(), 30 * kBlock);  // nothing at or after the failed block went out
  EXPECT_EQ(Difference(sink.bytes, src.substr(0, sink.bytes.size())), "");
}

TEST(TransferTest, AShortReadIsAnErrorNotAShortFile) {
  const std::string src = Data(10 * kBlock, 5);
  HeldFile remote(src.substr(0, 5 * kBlock + 1), kBuffers, 11);  // shrank after its size was taken
  MemorySink sink;
  Status st = Download(remote, src.size(), sink, Options());
  EXPECT_EQ(st.code(), proto::OUT_OF_RANGE) << st.ToString();
}

TEST(TransferTest, CompareSinkNamesTheFirstDifferingByte) {
  char path[] = "/tmp/shoal_compare_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::string local = Data(3 * kBlock, 6);
  ASSERT_EQ(::write(fd, local.data(), local.size()), static_cast<ssize_t>(local.size()));
  CompareSink same(fd, "local", "/remote");
  EXPECT_TRUE(same.Take(kBlock, reinterpret_cast<const uint8_t*>(local.data()) + kBlock, kBlock).ok());
  std::string other = local;
  other[kBlock + 77] ^= 1;
  CompareSink differ(fd, "local", "/remote");
  Status st = differ.Take(kBlock, reinterpret_cast<const uint8_t*>(other.data()) + kBlock, kBlock);
  EXPECT_EQ(st.code(), proto::CHECKSUM_MISMATCH);
  EXPECT_NE(st.message().find("differ at byte " + std::to_string(kBlock + 77)), std::string::npos) << st.ToString();
  CompareSink longer(fd, "local", "/remote");  // the remote goes past the local end
  std::string more = local + "x";
  st = longer.Take(0, reinterpret_cast<const uint8_t*>(more.data()), more.size());
  EXPECT_EQ(st.code(), proto::CHECKSUM_MISMATCH);
  EXPECT_NE(st.message().find("ends at byte " + std::to_string(local.size())), std::string::npos) << st.ToString();
  ::close(fd);
}

}  // namespace
}  // namespace shoal::cli
