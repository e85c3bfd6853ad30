#include "storage/write_ledger.h"

#include <gtest/gtest.h>

namespace shoal::storage {
namespace {

// An apply that counts its calls and returns the next version.
struct Applier {
  int calls = 0;
  uint64_t version = 0;
  Status fail;
  Result<uint64_t> operator()() {
    ++calls;
    if (!fail.ok()) return fail;
    return ++version;
  }
};

TEST(WriteLedgerTest, ARetryOfAWriteThatLandedIsNotAppliedAgain) {
  WriteLedger ledger;
  Applier a;
  auto apply = [&] { return a(); };
  EXPECT_EQ(*ledger.Apply({7, 1, 1}, apply), 1u);
  EXPECT_EQ(*ledger.Apply({7, 1, 1}, apply), 1u);  // the retry: same result, not re-applied
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(*ledger.Apply({7, 1, 2}, apply), 2u);
  EXPECT_EQ(a.calls, 2);
}

TEST(WriteLedgerTest, AnAttemptOlderThanTheLanesLastWriteIsRefused) {
  WriteLedger ledger;
  Applier a;
  auto apply = [&] { return a(); };
  ASSERT_TRUE(ledger.Apply({7, 1, 1}, apply).ok());
  ASSERT_TRUE(ledger.Apply({7, 1, 2}, apply).ok());
  EXPECT_EQ(ledger.Apply({7, 1, 1}, apply).status().code(), proto::SUPERSEDED);
  EXPECT_EQ(a.calls, 2);
  EXPECT_EQ(ledger.superseded(), 1u);
  // Other lanes and other clients are independent.
  EXPECT_TRUE(ledger.Apply({7, 2, 1}, apply).ok());
  EXPECT_TRUE(ledger.Apply({8, 1, 1}, apply).ok());
}

TEST(WriteLedgerTest, AFailedWriteMayBeRetried) {
  WriteLedger ledger;
  Applier a;
  a.fail = Error(proto::NO_SPACE, "full");
  auto apply = [&] { return a(); };
  EXPECT_EQ(ledger.Apply({7, 1, 1}, apply).status().code(), proto::NO_SPACE);
  a.fail = Status::OK();
  EXPECT_EQ(*ledger.Apply({7, 1, 1}, apply), 1u);
  EXPECT_EQ(a.calls, 2);
}

TEST(WriteLedgerTest, ClientZeroBypassesTheLedgerAndLanesAreBounded) {
  WriteLedger ledger(4);
  Applier a;
  auto apply = [&] { return a(); };
  EXPECT_TRUE(ledger.Apply({0, 0, 0}, apply).ok());
  EXPECT_TRUE(ledger.Apply({0, 0, 0}, apply).ok());
  EXPECT_EQ(a.calls, 2);
  EXPECT_EQ(ledger.lanes(), 0u);
  for (uint32_t lane = 0; lane < 10; ++lane) ASSERT_TRUE(ledger.Apply({9, lane, 1}, apply).ok());
  EXPECT_EQ(ledger.lanes(), 4u);
}

}  // namespace
}  // namespace shoal::storage
