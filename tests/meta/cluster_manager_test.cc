#include "meta/cluster_manager.h"

#include <gtest/gtest.h>

namespace shoal::meta {
namespace {

proto::RegisterReq Node(uint32_t id, std::vector<uint32_t> targets) {
  proto::RegisterReq r;
  r.set_node_id(id);
  r.set_address("127.0.0.1:" + std::to_string(9000 + id));
  for (auto t : targets) {
    auto* ti = r.add_targets();
    ti->set_target_id(t);
    ti->set_capacity_bytes(100);
    ti->set_free_bytes(40);
  }
  return r;
}

TEST(ClusterManagerTest, RegisterCreatesChainsAndPersists) {
  auto kv = NewMemoryKv();
  ManualClock clock;
  ClusterManager cm(kv.get(), &clock, "c", 1000);
  ASSERT_TRUE(cm.Register(Node(1, {101})).ok());
  ASSERT_TRUE(cm.Register(Node(2, {201, 202})).ok());
  auto t = cm.Table();
  EXPECT_EQ(t.nodes_size(), 2);
  EXPECT_EQ(t.chains_size(), 3);
  EXPECT_EQ(cm.PlacementChains(), (std::vector<uint32_t>{1, 2, 3}));
  uint64_t total, free;
  cm.Capacity(&total, &free);
  EXPECT_EQ(total, 300u);
  EXPECT_EQ(free, 120u);
  // A target id claimed by another node is refused.
  EXPECT_EQ(cm.Register(Node(3, {101})).status().code(), proto::INVALID_ARGUMENT);
  // Re-registering does not duplicate chains; state survives a restart.
  ASSERT_TRUE(cm.Register(Node(1, {101})).ok());
  ClusterManager again(kv.get(), &clock, "c", 1000);
  ASSERT_TRUE(again.Load().ok());
  EXPECT_EQ(again.Table().chains_size(), 3);
  EXPECT_EQ(again.version(), cm.version());
}

TEST(ClusterManagerTest, SilentNodeGoesOfflineAndChainVersionsBump) {
  auto kv = NewMemoryKv();
  ManualClock clock;
  ClusterManager cm(kv.get(), &clock, "c", 1000);
  ASSERT_TRUE(cm.Register(Node(1, {101})).ok());
  ASSERT_TRUE(cm.Register(Node(2, {201})).ok());
  uint64_t v0 = cm.version();
  uint64_t chain_v0 = cm.Table().chains(0).version();
  clock.Advance(600);
  proto::HeartbeatReq hb;
  hb.set_node_id(2);
  EXPECT_FALSE(cm.Heartbeat(hb).reregister());
  clock.Advance(600);  // node 1 silent 1200 ms, node 2 only 600 ms
  ASSERT_TRUE(cm.CheckLiveness().ok());
  auto t = cm.Table();
  EXPECT_EQ(t.nodes(0).state(), proto::NODE_OFFLINE);
  EXPECT_EQ(t.nodes(1).state(), proto::NODE_ONLINE);
  EXPECT_EQ(t.targets(0).state(), proto::TARGET_OFFLINE);
  EXPECT_GT(cm.version(), v0);
  EXPECT_GT(t.chains(0).version(), chain_v0);
  EXPECT_EQ(cm.PlacementChains(), std::vector<uint32_t>{2});
  hb.set_node_id(1);
  EXPECT_TRUE(cm.Heartbeat(hb).reregister());
  ASSERT_TRUE(cm.Register(Node(1, {101})).ok());
  EXPECT_EQ(cm.Table().targets(0).state(), proto::TARGET_SERVING);
}

}  // namespace
}  // namespace shoal::meta
