#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace shoal {
namespace {

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("", 0), 0u);
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // RFC 3720 check value
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(Crc32cTest, ContinuesFromSeed) {
  std::string s = "hello, shoal world";
  uint32_t whole = Crc32c(s.data(), s.size());
  uint32_t part = Crc32c(s.data(), 5);
  EXPECT_EQ(Crc32c(s.data() + 5, s.size() - 5, part), whole);
}

}  // namespace
}  // namespace shoal
