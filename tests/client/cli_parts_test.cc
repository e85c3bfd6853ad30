// The command line's pure parts: the progress line, config discovery and the
// chunk placement summary.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "client/cli/config_discovery.h"
#include "client/cli/placement.h"
#include "client/cli/progress.h"

namespace shoal::cli {
namespace {

// ---- progress ----

struct Captured {
  Captured() : f(open_memstream(&buf, &len)) {}
  ~Captured() {
    std::fclose(f);
    std::free(buf);
  }
  std::string text() {
    std::fflush(f);
    return std::string(buf, len);
  }
  char* buf = nullptr;
  size_t len = 0;
  FILE* f;
};

TEST(ProgressLineTest, ShowsBytesPercentRateAndEtaRedrawnInPlaceAtMostFourTimesASecond) {
  Captured out;
  int64_t now = 1000;
  ProgressLine p(out.f, true, "put f", 100 << 20, [&] { return now; });
  now += 2000;
  p.Update(20 << 20);  // 20 MiB in 2 s: 10 MiB/s, 80 MiB left: 8 s
  std::string first = out.text();
  EXPECT_EQ(first, "\rput f: 20.0 MiB / 100.0 MiB  20%  10.0 MiB/s  ETA 0:08\033[K");
  now += 100;
  p.Update(21 << 20);  // too soon: not drawn
  EXPECT_EQ(out.text(), first);
  now += 150;
  p.Update(22 << 20);
  EXPECT_GT(out.text().size(), first.size());
  EXPECT_NE(out.text().find("\rput f: 22.0 MiB"), std::string::npos);
  p.Finish();  // the line is erased for the caller's summary
  EXPECT_EQ(out.text().substr(out.text().size() - 4), "\r\033[K");
}

TEST(ProgressLineTest, DisabledDrawsNothing) {
  Captured out;
  int64_t now = 0;
  ProgressLine p(out.f, false, "get f", 10, [&] { return now; });
  for (int i = 0; i < 10; ++i) {
    now += 1000;
    p.Update(i);
  }
  p.Finish();
  EXPECT_EQ(out.text(), "");
}

TEST(ProgressLineTest, UnknownTotalShowsBytesAndRateOnly) {
  ProgressLine p(stderr, false, "put -", 0, [] { return int64_t{0}; });
  EXPECT_EQ(p.Render(3ull << 30, 3000), "put -: 3.0 GiB  1.0 GiB/s");
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
}

TEST(ProgressLineTest, LongEtaHasHours) {
  ProgressLine p(stderr, false, "get f", 3601, [] { return int64_t{0}; });
  EXPECT_EQ(p.Render(1, 1000), "get f: 1 B / 3.5 KiB   0%  1 B/s  ETA 1:00:00");
}

// ---- config discovery ----

struct FakeEnv {
  std::map<std::string, std::string> env;
  std::set<std::string> files;
  ConfigSources Sources(std::string flag = "") {
    ConfigSources s;
    s.flag = std::move(flag);
    s.getenv = [this](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    };
    s.is_file = [this](const std::string& p) { return files.count(p) > 0; };
    return s;
  }
};

TEST(ConfigDiscoveryTest, FlagThenEnvironmentThenWellKnownPlaces) {
  FakeEnv e;
  e.files = {"/my.toml", "/env.toml", "/home/x/conf/client.toml", kLocalClusterConfig, kInstalledConfig};
  e.env["SHOAL_CONFIG"] = "/env.toml";
  e.env["SHOAL_HOME"] = "/home/x";
  EXPECT_EQ(*FindClientConfig(e.Sources("/my.toml"), false), "/my.toml");
  EXPECT_EQ(*FindClientConfig(e.Sources(), false), "/env.toml");
  e.env.erase("SHOAL_CONFIG");
  EXPECT_EQ(*FindClientConfig(e.Sources(), false), "/home/x/conf/client.toml");
  e.env.erase("SHOAL_HOME");
  EXPECT_EQ(*FindClientConfig(e.Sources(), false), kLocalClusterConfig);
  e.files.erase(kLocalClusterConfig);
  EXPECT_EQ(*FindClientConfig(e.Sources(), false), kInstalledConfig);
}

TEST(ConfigDiscoveryTest, ANamedFileThatIsMissingIsAnErrorNotAFallback) {
  FakeEnv e;
  e.files = {kLocalClusterConfig};
  auto flag = FindClientConfig(e.Sources("/nope.toml"), false);
  EXPECT_EQ(flag.status().code(), proto::NOT_FOUND);
  EXPECT_NE(flag.status().message().find("/nope.toml"), std::string::npos);
  e.env["SHOAL_CONFIG"] = "/gone.toml";
  auto env = FindClientConfig(e.Sources(), true);
  EXPECT_EQ(env.status().code(), proto::NOT_FOUND);
  EXPECT_NE(env.status().message().find("SHOAL_CONFIG=/gone.toml"), std::string::npos);
}

TEST(ConfigDiscoveryTest, NothingFoundNamesEveryPlaceLookedAt) {
  FakeEnv e;
  e.env["SHOAL_HOME"] = "/home/y";
  auto r = FindClientConfig(e.Sources(), false);
  ASSERT_EQ(r.status().code(), proto::NOT_FOUND);
  for (std::string place : {"--config", "SHOAL_CONFIG", "/home/y/conf/client.toml", kLocalClusterConfig,
                            kInstalledConfig, "local-cluster.sh up"})
    EXPECT_NE(r.status().message().find(place), std::string::npos) << place << "\n" << r.status().message();
  // With the cluster named on the command line, no file is needed.
  EXPECT_EQ(*FindClientConfig(e.Sources(), true), "");
}

// ---- placement summary ----

TEST(PlacementSummaryTest, CountsChunksAndBytesPerTargetAndNode) {
  proto::Layout layout;
  layout.set_chunk_size(1000);
  layout.set_stripe_width(3);
  for (uint32_t ch : {1, 2, 3}) layout.add_chains(ch);
  // Chains 1 and 2 live on node 1 (targets 101, 102), chain 3 on node 2.
  PlaceFn place = [&](uint64_t i) -> Result<client::Client::Placement> {
    uint32_t chain = layout.chains(static_cast<int>(i % 3));
    client::Client::Placement p;
    p.chain_id = chain;
    p.node_id = chain == 3 ? 2 : 1;
    p.target_id = chain == 3 ? 201 : 100 + chain;
    p.address = chain == 3 ? "n2:1" : "n1:1";
    return p;
  };
  auto s = SummarisePlacement(layout, 7500, place);  // chunks 0..7, the last one half full
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->chunks, 8u);
  ASSERT_EQ(s->nodes.size(), 2u);
  EXPECT_EQ(s->nodes[0].node_id, 1u);
  EXPECT_EQ(s->nodes[0].chunks, 6u);  // 0,1,3,4,6,7
  EXPECT_EQ(s->nodes[0].bytes, 5500u);
  EXPECT_EQ(s->nodes[1].chunks, 2u);  // 2,5
  EXPECT_EQ(s->nodes[1].bytes, 2000u);
  ASSERT_EQ(s->targets.size(), 3u);
  EXPECT_EQ(s->targets[0].target_id, 101u);
  EXPECT_EQ(s->targets[0].chunks, 3u);  // 0,3,6
  EXPECT_EQ(s->targets[1].target_id, 102u);
  EXPECT_EQ(s->targets[1].bytes, 2500u);  // 1,4 and the half chunk 7
  EXPECT_EQ(s->targets[2].target_id, 201u);
  std::string text = FormatPlacement(*s);
  EXPECT_NE(text.find("placement: 8 chunks on 3 targets, 2 nodes"), std::string::npos) << text;
  EXPECT_NE(text.find("node 1    n1:1"), std::string::npos) << text;
  EXPECT_NE(text.find("target 102"), std::string::npos) << text;
  EXPECT_NE(text.find("2500 bytes"), std::string::npos) << text;

  EXPECT_EQ(SummarisePlacement(layout, 0, place)->chunks, 0u);
  PlaceFn broken = [](uint64_t) -> Result<client::Client::Placement> { return Error(proto::UNAVAILABLE, "down"); };
  EXPECT_EQ(SummarisePlacement(layout, 10, broken).status().code(), proto::UNAVAILABLE);
}

}  // namespace
}  // namespace shoal::cli
