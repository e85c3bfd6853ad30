// The frame: a fixed 32-byte little-endian header, then `message_len` bytes of
// protobuf, then `payload_len` raw payload bytes (bulk data, never protobuf).
//
//   magic u32 | version u16 | flags u16 | method u32 | status u32 |
//   request_id u64 | message_len u32 | payload_len u32
//
// A response has kFlagResponse set and the request's id and method. When its
// status is not OK the message is an ErrorDetail and there is no payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/uio.h>

#include "common/status.h"

namespace shoal::rpc {

constexpr uint32_t kFrameMagic = 0x4C4F4853;  // "SHOL"
constexpr uint16_t kProtocolVersion = 1;
constexpr size_t kFrameHeaderSize = 32;
constexpr uint16_t kFlagResponse = 1;

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  uint16_t flags = 0;
  uint32_t method = 0;
  uint32_t status = 0;  // an ErrorCode
  uint64_t request_id = 0;
  uint32_t message_len = 0;
  uint32_t payload_len = 0;

  bool is_response() const { return flags & kFlagResponse; }
};

void EncodeFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]);

// Validates before anything is allocated: PROTOCOL_ERROR for a bad magic or
// version, TOO_LARGE when message + payload exceed `max_frame_bytes`.
Status DecodeFrameHeader(const uint8_t in[kFrameHeaderSize], uint64_t max_frame_bytes, FrameHeader* h);

}  // namespace shoal::rpc

namespace shoal::rpc {

class Connection;

// Writes header + message + payload in one gather write. Sets the header's
// lengths from the arguments. Callers serialize writes on one connection.
Status SendFrame(Connection& conn, FrameHeader header, const std::string& message, const iovec* payload = nullptr,
                 int payload_iovs = 0);

// Reads one frame that must carry no payload (handshake frames).
Status ReadSmallFrame(Connection& conn, uint64_t max_frame_bytes, FrameHeader* header, std::string* message);

}  // namespace shoal::rpc
