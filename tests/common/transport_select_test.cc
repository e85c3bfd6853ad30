#include "common/rpc/transport_select.h"

#include <gtest/gtest.h>

namespace shoal::rpc {
namespace {

TEST(TransportSelectTest, ChoosesTcpOrFallsBackWithAReason) {
  EXPECT_EQ(*SelectTransport("tcp"), TcpTransport());
  EXPECT_EQ(SelectTransport("carrier-pigeon").status().code(), proto::INVALID_ARGUMENT);
  std::string why;
  bool usable = RdmaUsable(&why);
  EXPECT_FALSE(why.empty());
  auto t = SelectTransport("auto");
  ASSERT_TRUE(t.ok());
  // Without a verbs backend (or without a device) every choice lands on TCP.
  EXPECT_EQ((*t)->Name(), "tcp") << (usable ? "device present: " : "no device: ") << why;
}

}  // namespace
}  // namespace shoal::rpc
