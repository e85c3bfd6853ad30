#include "common/rpc/frame.h"

#include <cstring>
#include <memory>
#include <string>

namespace shoal::rpc {

namespace {
template <typename T>
void Put(uint8_t*& p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) *p++ = static_cast<uint8_t>(v >> (8 * i));
}
template <typename T>
T Get(const uint8_t*& p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(*p++) << (8 * i);
  return v;
}
}  // namespace

void EncodeFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]) {
  uint8_t* p = out;
  Put<uint32_t>(p, kFrameMagic);
  Put<uint16_t>(p, h.version);
  Put<uint16_t>(p, h.flags);
  Put<uint32_t>(p, h.method);
  Put<uint32_t>(p, h.status);
  Put<uint64_t>(p, h.request_id);
  Put<uint32_t>(p, h.message_len);
  Put<uint32_t>(p, h.payload_len);
}

Status DecodeFrameHeader(const uint8_t in[kFrameHeaderSize], uint64_t max_frame_bytes, FrameHeader* h) {
  const uint8_t* p = in;
  uint32_t magic = Get<uint32_t>(p);
  if (magic != kFrameMagic) return Error(proto::PROTOCOL_ERROR, "bad frame magic");
  h->version = Get<uint16_t>(p);
  if (h->version != kProtocolVersion)
    return Error(proto::PROTOCOL_ERROR, "unsupported protocol version " + std::to_string(h->version));
  h->flags = Get<uint16_t>(p);
  h->method = Get<uint32_t>(p);
  h->status = Get<uint32_t>(p);
  h->request_id = Get<uint64_t>(p);
  h->message_len = Get<uint32_t>(p);
  h->payload_len = Get<uint32_t>(p);
  uint64_t total = uint64_t{h->message_len} + h->payload_len;
  if (total > max_frame_bytes)
    return Error(proto::TOO_LARGE, "frame of " + std::to_string(total) + " bytes exceeds limit " +
                                       std::to_string(max_frame_bytes));
  return Status::OK();
}

}  // namespace shoal::rpc

#include "common/rpc/transport.h"

namespace shoal::rpc {

Status SendFrame(Connection& conn, FrameHeader header, const std::string& message, const iovec* payload,
                 int payload_iovs) {
  header.message_len = static_cast<uint32_t>(message.size());
  uint64_t payload_len = 0;
  for (int i = 0; i < payload_iovs; ++i) payload_len += payload[i].iov_len;
  header.payload_len = static_cast<uint32_t>(payload_len);
  uint8_t hdr[kFrameHeaderSize];
  EncodeFrameHeader(header, hdr);
  iovec local[16];
  std::unique_ptr<iovec[]> heap;
  iovec* iov = local;
  int n = 2 + payload_iovs;
  if (n > 16) {
    heap.reset(new iovec[n]);
    iov = heap.get();
  }
  iov[0] = {hdr, kFrameHeaderSize};
  iov[1] = {const_cast<char*>(message.data()), message.size()};
  for (int i = 0; i < payload_iovs; ++i) iov[2 + i] = payload[i];
  return conn.WriteV(iov, n);
}

Status ReadSmallFrame(Connection& conn, uint64_t max_frame_bytes, FrameHeader* header, std::string* message) {
  uint8_t hdr[kFrameHeaderSize];
  RETURN_IF_ERROR(conn.ReadFull(hdr, sizeof(hdr)));
  RETURN_IF_ERROR(DecodeFrameHeader(hdr, max_frame_bytes, header));
  if (header->payload_len != 0) return Error(proto::PROTOCOL_ERROR, "unexpected payload in control frame");
  message->resize(header->message_len);
  return conn.ReadFull(message->data(), message->size());
}

}  // namespace shoal::rpc
