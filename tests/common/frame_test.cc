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

#include <sys/socket.h>

#include <thread>

#include "common/rpc/frame_reader.h"
#include "common/rpc/transport.h"

namespace shoal::rpc {
namespace {

TEST(FrameReaderTest, PipelinedSmallAndLargeFramesAndSkips) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  auto writer = NewStreamConnection(fds[0], "w");
  auto reader = NewStreamConnection(fds[1], "r");
  std::vector<std::string> payloads = {"", "tiny", std::string(200000, 'L'), std::string(3000, 's'),
                                       std::string(70000, 'k')};
  for (size_t i = 0; i < payloads.size(); ++i)
    for (size_t j = 0; j < payloads[i].size(); ++j) payloads[i][j] = static_cast<char>(i * 31 + j);
  std::thread t([&] {
    for (size_t i = 0; i < payloads.size(); ++i) {
      FrameHeader h;
      h.request_id = i;
      iovec v{payloads[i].data(), payloads[i].size()};
      ASSERT_TRUE(SendFrame(*writer, h, "msg" + std::to_string(i), &v, 1).ok());
    }
  });
  FrameReader in(*reader, 1 << 20, 8192);
  for (size_t i = 0; i < payloads.size(); ++i) {
    FrameHeader h;
    ASSERT_TRUE(in.ReadHeader(&h).ok());
    EXPECT_EQ(h.request_id, i);
    std::string msg(h.message_len, '\0');
    ASSERT_TRUE(in.Read(msg.data(), msg.size()).ok());
    EXPECT_EQ(msg, "msg" + std::to_string(i));
    if (i == 3) {  // skipped, and the stream stays in step
      ASSERT_TRUE(in.Skip(h.payload_len).ok());
      continue;
    }
    // Split the payload across two destinations.
    std::string a(h.payload_len / 3, '\0'), b(h.payload_len - a.size(), '\0');
    iovec dst[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
    ASSERT_TRUE(in.ReadV(dst, 2).ok());
    EXPECT_EQ(a + b, payloads[i]) << i;
  }
  t.join();
  writer.reset();
  FrameHeader h;
  EXPECT_EQ(in.ReadHeader(&h).code(), proto::UNAVAILABLE);
}

}  // namespace
}  // namespace shoal::rpc
