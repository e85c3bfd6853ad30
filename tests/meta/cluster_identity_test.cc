// The cluster's identity in meta: --init creates it once, a start without
// --init requires it, and registration checks targets' stamps against it and
// reports what a re-formatted disk lost.
#include "meta/cluster_identity.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/clock.h"
#include "common/random_id.h"
#include "meta/cluster_manager.h"

namespace shoal::meta {
namespace {

namespace fs = std::filesystem;

class MetaDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/metadb_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(MetaDatabaseTest, AStartWithoutInitRefusesAMissingDatabaseAndCreatesNothing) {
  auto kv = OpenMetaDatabase(dir_, /*init=*/false);
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.status().code(), proto::INVALID_ARGUMENT);
  EXPECT_NE(kv.status().message().find(dir_), std::string::npos) << kv.status().ToString();
  EXPECT_NE(kv.status().message().find("--init"), std::string::npos) << kv.status().ToString();
  EXPECT_FALSE(fs::exists(dir_));
  fs::create_directories(dir_);  // an empty directory is no database either
  EXPECT_FALSE(OpenMetaDatabase(dir_, false).ok());
}

TEST_F(MetaDatabaseTest, InitCreatesAClusterOnceAndLaterStartsFindIt) {
  std::string uuid;
  {
    auto kv = OpenMetaDatabase(dir_, /*init=*/true);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    auto made = InitClusterUuid(kv->get(), dir_);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    EXPECT_TRUE(IsUuid(*made));
    uuid = *made;
  }
  {
    auto kv = OpenMetaDatabase(dir_, /*init=*/false);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    auto loaded = LoadClusterUuid(kv->get(), dir_);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ(*loaded, uuid);
  }
  // --init over it is refused, and leaves the identity alone.
  auto kv = OpenMetaDatabase(dir_, /*init=*/true);
  ASSERT_TRUE(kv.ok());
  auto again = InitClusterUuid(kv->get(), dir_);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find(dir_), std::string::npos) << again.status().ToString();
  EXPECT_NE(again.status().message().find(uuid), std::string::npos) << again.status().ToString();
  EXPECT_EQ(*LoadClusterUuid(kv->get(), dir_), uuid);
}

TEST_F(MetaDatabaseTest, InitRefusesADirectoryOfOtherFiles) {
  fs::create_directories(dir_);
  std::ofstream(dir_ + "/precious") << "not a database";
  auto kv = OpenMetaDatabase(dir_, /*init=*/true);
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.status().message().find(dir_), std::string::npos) << kv.status().ToString();
  EXPECT_TRUE(fs::exists(dir_ + "/precious"));
  EXPECT_FALSE(fs::exists(dir_ + "/CURRENT"));
}

TEST(ClusterIdentityTest, AnEmptyOrUnidentifiedDatabaseIsRefused) {
  auto kv = NewMemoryKv();
  auto empty = LoadClusterUuid(kv.get(), "/db");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos) << empty.status().ToString();
  KvBatch b;
  b.Put(Cf::kInodes, "some-inode", "x");  // a namespace without an identity
  ASSERT_TRUE(kv->Write(b).ok());
  EXPECT_FALSE(LoadClusterUuid(kv.get(), "/db").ok());
  EXPECT_FALSE(InitClusterUuid(kv.get(), "/db").ok());  // and --init will not adopt it
}

proto::RegisterReq Node(uint32_t node, uint32_t target, const std::string& uuid, uint64_t incarnation) {
  proto::RegisterReq r;
  r.set_node_id(node);
  r.set_address("127.0.0.1:" + std::to_string(9000 + node));
  auto* ti = r.add_targets();
  ti->set_target_id(target);
  ti->set_path("/disk" + std::to_string(target));
  ti->set_cluster_uuid(uuid);
  ti->set_incarnation(incarnation);
  return r;
}

uint64_t LostBelow(const proto::RegisterRsp& rsp, uint32_t target) {
  for (const auto& v : rsp.targets())
    if (v.target_id() == target) return v.lost_below_inode();
  ADD_FAILURE() << "no verdict for target " << target;
  return 0;
}

TEST(ClusterIdentityTest, RegisterRefusesAForeignStampAndReportsWhatANewDiskLost) {
  auto kv = NewMemoryKv();
  ManualClock clock;
  const std::string uuid = NewUuid();
  uint64_t next_inode = 50;
  ClusterManager cm(kv.get(), &clock, "c", 1000);
  cm.SetIdentity(uuid, [&] { return next_inode; });

  // A target seen for the first time (being formatted: no UUID yet) lost nothing.
  auto first = cm.Register(Node(1, 101, "", 0xaaaa));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->cluster_uuid(), uuid);
  EXPECT_EQ(LostBelow(*first, 101), 0u);
  // The same disk again: still nothing.
  next_inode = 80;
  EXPECT_EQ(LostBelow(*cm.Register(Node(1, 101, uuid, 0xaaaa)), 101), 0u);

  // A disk of another cluster is refused, naming both clusters and the path.
  const std::string foreign = NewUuid();
  auto refused = cm.Register(Node(1, 101, foreign, 0xaaaa));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), proto::INVALID_ARGUMENT);
  EXPECT_NE(refused.status().message().find(foreign), std::string::npos) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("/disk101"), std::string::npos) << refused.status().ToString();

  // A new disk under a known id: every inode so far may have lost chunks there.
  auto swapped = cm.Register(Node(1, 101, "", 0xbbbb));
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(LostBelow(*swapped, 101), 80u);
  // Repeated for that disk (a crash before the server recorded it must not lose
  // the answer), across a restart of meta too.
  next_inode = 120;
  EXPECT_EQ(LostBelow(*cm.Register(Node(1, 101, uuid, 0xbbbb)), 101), 80u);
  ClusterManager restarted(kv.get(), &clock, "c", 1000);
  ASSERT_TRUE(restarted.Load().ok());
  restarted.SetIdentity(uuid, [&] { return next_inode; });
  EXPECT_EQ(LostBelow(*restarted.Register(Node(1, 101, uuid, 0xbbbb)), 101), 80u);
  // Another format later loses more, never less.
  EXPECT_EQ(LostBelow(*restarted.Register(Node(1, 101, "", 0xcccc)), 101), 120u);
}

TEST(ClusterIdentityTest, IdentifyingBeforeServingRecordsTheDiskButListsNothingOnline) {
  auto kv = NewMemoryKv();
  ManualClock clock;
  const std::string uuid = NewUuid();
  uint64_t next_inode = 30;
  ClusterManager cm(kv.get(), &clock, "c", 1000);
  cm.SetIdentity(uuid, [&] { return next_inode; });
  auto identify = [&](uint32_t node, uint32_t target, const std::string& stamp_uuid, uint64_t incarnation) {
    auto r = Node(node, target, stamp_uuid, incarnation);
    r.set_before_serving(true);
    return cm.Register(r);
  };

  // A new node: answered, not listed.
  auto fresh = identify(1, 101, "", 0xaaaa);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->cluster_uuid(), uuid);
  EXPECT_EQ(LostBelow(*fresh, 101), 0u);
  EXPECT_EQ(cm.Table().nodes_size(), 0);
  EXPECT_FALSE(identify(1, 101, NewUuid(), 0xaaaa).ok());  // a foreign stamp is refused here too

  ASSERT_TRUE(cm.Register(Node(1, 101, uuid, 0xaaaa)).ok());
  clock.Advance(2000);
  ASSERT_TRUE(cm.CheckLiveness().ok());
  ASSERT_EQ(cm.Table().nodes(0).state(), proto::NODE_OFFLINE);

  // The node comes back with a new disk: the loss is recorded at once, the
  // node stays offline until it registers to serve.
  auto swapped = identify(1, 101, "", 0xbbbb);
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(LostBelow(*swapped, 101), 30u);
  EXPECT_EQ(cm.Table().nodes(0).state(), proto::NODE_OFFLINE);
  EXPECT_EQ(cm.Table().targets(0).state(), proto::TARGET_OFFLINE);
  next_inode = 60;
  auto serving = cm.Register(Node(1, 101, uuid, 0xbbbb));
  ASSERT_TRUE(serving.ok());
  EXPECT_EQ(LostBelow(*serving, 101), 30u);
  EXPECT_EQ(cm.Table().nodes(0).state(), proto::NODE_ONLINE);
  ClusterManager restarted(kv.get(), &clock, "c", 1000);  // and it was durable
  ASSERT_TRUE(restarted.Load().ok());
  EXPECT_EQ(restarted.Table().targets(0).incarnation(), 0xbbbbu);
  EXPECT_EQ(restarted.Table().targets(0).lost_below_inode(), 30u);
}

}  // namespace
}  // namespace shoal::meta
