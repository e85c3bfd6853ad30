#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace shoal {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error(proto::INVALID_ARGUMENT, "odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(*out, Half(h));
  return Status::OK();
}

TEST(StatusTest, PropagatesErrorsAndValues) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, &q).ok());
  EXPECT_EQ(q, 2);
  Status st = Quarter(6, &q);
  EXPECT_EQ(st.code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(st.ToString(), "INVALID_ARGUMENT: odd");
}

TEST(StatusTest, MapsToErrno) {
  EXPECT_EQ(Status().ToErrno(), 0);
  EXPECT_EQ(Error(proto::NOT_FOUND, "").ToErrno(), ENOENT);
  EXPECT_EQ(Error(proto::NAME_TOO_LONG, "").ToErrno(), ENAMETOOLONG);
  EXPECT_EQ(Error(proto::NOT_EMPTY, "").ToErrno(), ENOTEMPTY);
  EXPECT_EQ(Error(proto::CHECKSUM_MISMATCH, "").ToErrno(), EIO);
  EXPECT_EQ(Status::FromErrno(ENOSPC, "write").code(), proto::NO_SPACE);
}

}  // namespace
}  // namespace shoal
