#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace shoal {
namespace {

struct Cfg {
  std::string listen = "127.0.0.1:1";
  int64_t depth = 64;
  bool direct = true;
  std::vector<std::string> targets;
};

Status ParseWith(Cfg* cfg, const std::string& toml, std::vector<std::string> args) {
  std::string path = ::testing::TempDir() + "/cfg.toml";
  std::ofstream(path) << toml;
  ConfigSpec spec("t", "test");
  spec.Add("listen", &cfg->listen, "where");
  spec.Add("queue_depth", &cfg->depth, "depth");
  spec.Add("direct_io", &cfg->direct, "direct");
  spec.Add("targets", &cfg->targets, "dirs");
  args.insert(args.begin(), {"prog", "--config", path});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  bool exit_now = false;
  return spec.Parse(static_cast<int>(argv.size()), argv.data(), &exit_now);
}

TEST(ConfigTest, DefaultsFileThenFlags) {
  Cfg cfg;
  ASSERT_TRUE(ParseWith(&cfg, "listen = \"0.0.0.0:9\"\nqueue_depth = 8\ntargets = [\"/a\", \"/b\"]\n",
                        {"--queue-depth", "128"}).ok());
  EXPECT_EQ(cfg.listen, "0.0.0.0:9");
  EXPECT_EQ(cfg.depth, 128);  // the flag wins over the file
  EXPECT_TRUE(cfg.direct);    // default kept
  EXPECT_EQ(cfg.targets, (std::vector<std::string>{"/a", "/b"}));
}

TEST(ConfigTest, RejectsBadInput) {
  Cfg cfg;
  EXPECT_EQ(ParseWith(&cfg, "listen = \n", {}).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(ParseWith(&cfg, "nonsense = 1\n", {}).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(ParseWith(&cfg, "queue_depth = \"deep\"\n", {}).code(), proto::INVALID_ARGUMENT);
  EXPECT_EQ(ParseWith(&cfg, "", {"--bogus"}).code(), proto::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace shoal
