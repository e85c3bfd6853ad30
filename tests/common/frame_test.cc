#include "common/rpc/frame.h"

#include <gtest/gtest.h>

namespace shoal::rpc {
namespace {

TEST(FrameTest, RoundTrips) {
  FrameHeader h;
  h.flags = kFlagResponse;
  h.method = proto::STORAGE_READ;
  h.status = proto::CHECKSUM_MISMATCH;
  h.request_id = 0x0102030405060708ull;
  h.message_len = 17;
  h.payload_len = 1 << 20;
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  FrameHeader out;
  ASSERT_TRUE(DecodeFrameHeader(raw, 2 << 20, &out).ok());
  EXPECT_TRUE(out.is_response());
  EXPECT_EQ(out.method, h.method);
  EXPECT_EQ(out.status, h.status);
  EXPECT_EQ(out.request_id, h.request_id);
  EXPECT_EQ(out.message_len, 17u);
  EXPECT_EQ(out.payload_len, 1u << 20);
}

TEST(FrameTest, RejectsBadMagicVersionAndSize) {
  FrameHeader h;
  h.payload_len = 1000;
  uint8_t raw[kFrameHeaderSize];
  EncodeFrameHeader(h, raw);
  FrameHeader out;
  EXPECT_EQ(DecodeFrameHeader(raw, 999, &out).code(), proto::TOO_LARGE);
  raw[0] ^= 0xff;
  EXPECT_EQ(DecodeFrameHeader(raw, 1 << 20, &out).code(), proto::PROTOCOL_ERROR);
  raw[0] ^= 0xff;
  raw[4] = 9;
  EXPECT_EQ(DecodeFrameHeader(raw, 1 << 20, &out).code(), proto::PROTOCOL_ERROR);
}

}  // namespace
}  // namespace shoal::rpc
