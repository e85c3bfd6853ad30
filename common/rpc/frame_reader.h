// FrameReader: reads frames from one connection through a buffer, so that a
// small frame (or several pipelined ones) costs about one system call, while
// a large payload still goes straight into its destination. One reader per
// connection, used by one thread.
#pragma once

#include <memory>
#include <string>

#include "common/rpc/frame.h"
#include "common/rpc/transport.h"

namespace shoal::rpc {

class FrameReader {
 public:
  FrameReader(Connection& conn, uint64_t max_frame_bytes, size_t buffer_bytes = 64 << 10);

  // Blocks until at least one byte of the next frame is here (or buffered);
  // lets the caller tell an idle connection from a frame in progress.
  Status WaitForData() { return Fill(1); }
  // The next header, validated (see DecodeFrameHeader).
  Status ReadHeader(FrameHeader* h);
  // Exactly `n` bytes into `dst`.
  Status Read(void* dst, size_t n);
  // Exactly the bytes of iov[0..count).
  Status ReadV(const iovec* iov, int count);
  // Discards `n` bytes.
  Status Skip(uint64_t n);

 private:
  // Moves buffered bytes into dst; returns how many.
  size_t Take(uint8_t* dst, size_t n);
  Status Fill(size_t want);  // until `want` bytes are buffered (want <= capacity)

  Connection& conn_;
  uint64_t max_frame_bytes_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_, begin_ = 0, end_ = 0;
};

}  // namespace shoal::rpc
