#include "common/rpc/frame_reader.h"

#include <cstring>
#include <vector>

namespace shoal::rpc {

FrameReader::FrameReader(Connection& conn, uint64_t max_frame_bytes, size_t buffer_bytes)
    : conn_(conn), max_frame_bytes_(max_frame_bytes), buf_(new uint8_t[buffer_bytes]), cap_(buffer_bytes) {}

size_t FrameReader::Take(uint8_t* dst, size_t n) {
  size_t k = std::min(n, end_ - begin_);
  if (k == 0) return 0;  // dst may be null (an empty payload owns no buffer)
  std::memcpy(dst, buf_.get() + begin_, k);
  begin_ += k;
  return k;
}

Status FrameReader::Fill(size_t want) {
  if (end_ - begin_ >= want) return Status::OK();
  if (begin_ > 0) {  // compact
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (end_ < want) {
    ASSIGN_OR_RETURN(size_t got, conn_.ReadSome(buf_.get() + end_, cap_ - end_));
    end_ += got;
  }
  return Status::OK();
}

Status FrameReader::ReadHeader(FrameHeader* h) {
  RETURN_IF_ERROR(Fill(kFrameHeaderSize));
  const uint8_t* raw = buf_.get() + begin_;
  begin_ += kFrameHeaderSize;
  return DecodeFrameHeader(raw, max_frame_bytes_, h);
}

Status FrameReader::Read(void* dst, size_t n) {
  iovec v{dst, n};
  return ReadV(&v, 1);
}

Status FrameReader::ReadV(const iovec* iov, int count) {
  std::vector<iovec> rest;
  for (int i = 0; i < count; ++i) {
    auto* p = static_cast<uint8_t*>(iov[i].iov_base);
    size_t n = iov[i].iov_len;
    if (rest.empty()) {
      size_t k = Take(p, n);
      p += k;
      n -= k;
    }
    if (n > 0) rest.push_back({p, n});
  }
  if (rest.empty()) return Status::OK();
  // Small remainders come through the buffer (one read may carry the next
  // frames too); large ones go straight into the destination.
  size_t total = 0;
  for (const auto& v : rest) total += v.iov_len;
  if (total < cap_ / 4) {
    RETURN_IF_ERROR(Fill(total));
    for (const auto& v : rest) Take(static_cast<uint8_t*>(v.iov_base), v.iov_len);
    return Status::OK();
  }
  return conn_.ReadFullV(rest.data(), static_cast<int>(rest.size()));
}

Status FrameReader::Skip(uint64_t n) {
  uint8_t sink[4096];
  while (n > 0) {
    size_t k = std::min<uint64_t>(n, sizeof(sink));
    RETURN_IF_ERROR(Read(sink, k));
    n -= k;
  }
  return Status::OK();
}

}  // namespace shoal::rpc
