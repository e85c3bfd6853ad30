// Crashes, damaged chunks, strangers and garbage: nothing is lost, only the
// bad input fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "common/rpc/client.h"
#include "common/rpc/frame.h"
#include "storage/chunk_format.h"
#include "storage/chunk_store.h"
#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

TEST(FaultTest, KillNineOfMetaAndStorageLosesNothing) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  std::map<std::string, std::string> files;
  files["/big"] = RandomString(24 << 20, 1);
  ASSERT_EQ(mkdir((c.mount() + "/dir").c_str(), 0755), 0);
  for (int i = 0; i < 50; ++i) files["/dir/f" + std::to_string(i)] = RandomString(1000 + i * 997, 10 + i);
  for (const auto& [path, data] : files) ASSERT_TRUE(WriteFile(c.mount() + path, data)) << path;
  auto verify = [&](const std::string& when) {
    for (const auto& [path, data] : files) ASSERT_EQ(ReadFile(c.mount() + path), data) << path << " " << when;
  };

  c.Kill(c.meta_pid(), SIGKILL);
  c.StartMeta();
  ASSERT_TRUE(c.WaitNodesOnline(LocalCluster::kNodes));
  verify("after kill -9 of shoal-meta");

  c.Kill(c.storage_pid(2), SIGKILL);
  c.StartStorage(2);
  ASSERT_TRUE(c.WaitNodesOnline(LocalCluster::kNodes));
  verify("after kill -9 of shoal-storage");

  // And the cluster still takes writes.
  files["/after"] = RandomString(5 << 20, 99);
  ASSERT_TRUE(WriteFile(c.mount() + "/after", files["/after"]));
  verify("after new writes");
}

TEST(FaultTest, ReadsOfADeadNodeFailWithinTheirDeadline) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string f = c.mount() + "/spread";
  ASSERT_TRUE(WriteFile(f, RandomString(6 << 20, 5)));
  for (int node = 1; node <= LocalCluster::kNodes; ++node) c.Kill(c.storage_pid(node), SIGKILL);
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<char> buf(1 << 20);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(pread(fd, buf.data(), buf.size(), 0), -1);
  EXPECT_EQ(errno, EIO);
  // Bounded retries (4 attempts, 3 s deadline each, backoff) end well before a minute.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  close(fd);
}

TEST(FaultTest, FlippedByteOnDiskFailsThatReadOnly) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string f = c.mount() + "/victim";
  std::string data = RandomString(4 << 20, 3);
  ASSERT_TRUE(WriteFile(f, data));
  auto client = c.NewClient();
  ASSERT_TRUE(client);
  auto attr = client->Resolve(client::ProcessCaller(), "/victim");
  ASSERT_TRUE(attr.ok());
  auto where = client->Place(attr->layout(), 0);
  ASSERT_TRUE(where.ok());
  auto stats = [&] {
    rpc::RpcChannel ch({where->address, {"test", c.ClientOptions().cluster_key, 2000}}, rpc::TcpTransport());
    proto::NodeStats s;
    EXPECT_TRUE(ch.CallSync(proto::STORAGE_STATS, proto::Empty(), &s, 2000).ok());
    return s;
  };
  uint64_t errors_before = stats().checksum_errors();
  const std::string sample = "shoal_storage_checksum_errors_total{target=\"" + std::to_string(where->target_id) + "\"}";
  const int node = static_cast<int>(where->node_id);
  EXPECT_EQ(c.Metric(node, sample), static_cast<double>(errors_before));

  std::string chunk = storage::ChunkFilePath(c.target_dir(where->target_id), attr->ino(), 0);
  int cfd = open(chunk.c_str(), O_RDWR);
  ASSERT_GE(cfd, 0) << chunk;
  off_t pos = storage::ChunkHeaderSize(attr->layout().chunk_size()) + 8192 + 5;
  char b;
  ASSERT_EQ(pread(cfd, &b, 1, pos), 1);
  b ^= 0x40;
  ASSERT_EQ(pwrite(cfd, &b, 1, pos), 1);
  fsync(cfd);
  close(cfd);

  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[4096];
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 8192), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_GT(stats().checksum_errors(), errors_before);
  EXPECT_GT(c.Metric(node, sample), static_cast<double>(errors_before));  // and Prometheus sees it
  // Other blocks of the chunk, and other chunks, still read.
  ASSERT_EQ(pread(fd, buf, sizeof(buf), 0), 4096);
  EXPECT_EQ(std::string(buf, 4096), data.substr(0, 4096));
  ASSERT_EQ(pread(fd, buf, sizeof(buf), 1 << 20), 4096);
  EXPECT_EQ(std::string(buf, 4096), data.substr(1 << 20, 4096));
  close(fd);
}

TEST(FaultTest, WrongClusterKeyIsRefused) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(false)) << c.error();
  auto opts = c.ClientOptions();
  opts.cluster_key = std::string(32, 'w');
  auto bad = client::Client::Connect(opts);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), proto::AUTH_FAILED);
  for (int node = 1; node <= LocalCluster::kNodes; ++node) {
    rpc::RpcChannel ch({c.storage_address(node), {"test", opts.cluster_key, 2000}}, rpc::TcpTransport());
    proto::NodeStats s;
    EXPECT_EQ(ch.CallSync(proto::STORAGE_STATS, proto::Empty(), &s, 2000).code(), proto::AUTH_FAILED);
  }
  EXPECT_TRUE(c.NewClient() != nullptr);
}

// True when the server closes the connection (EOF or reset) within the deadline.
bool ClosedByServer(rpc::Connection& conn) {
  conn.SetTimeouts(10000, 10000);
  char b;
  Status st = conn.ReadFull(&b, 1);
  while (st.ok()) st = conn.ReadFull(&b, 1);  // drain anything the server said first
  return st.code() == proto::UNAVAILABLE;
}

TEST(FaultTest, GarbageAndOversizedFramesCloseOnlyThatConnection) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(false)) << c.error();
  const std::string key = c.ClientOptions().cluster_key;
  std::vector<std::string> servers = {c.meta_address()};
  for (int node = 1; node <= LocalCluster::kNodes; ++node) servers.push_back(c.storage_address(node));
  for (const auto& addr : servers) {
    rpc::RpcChannel good({addr, {"test", key, 2000}}, rpc::TcpTransport());
    auto ping = [&] {
      proto::Empty rsp;
      // Any answer (even "unknown method") proves the server is serving.
      Status st = good.CallSync(proto::STORAGE_STATS, proto::Empty(), nullptr, 2000);
      return st.ok() || st.code() == proto::NOT_SUPPORTED;
    };
    ASSERT_TRUE(ping()) << addr;

    auto garbage = rpc::TcpTransport()->Connect(addr, 2000);
    ASSERT_TRUE(garbage.ok());
    std::string junk = RandomString(8192, 77);
    iovec v{junk.data(), junk.size()};
    (void)(*garbage)->WriteV(&v, 1);
    EXPECT_TRUE(ClosedByServer(**garbage)) << addr;

    auto big = rpc::TcpTransport()->Connect(addr, 2000);
    ASSERT_TRUE(big.ok());
    ASSERT_TRUE(rpc::ClientHandshake(**big, {"test", key, 2000}).ok());
    rpc::FrameHeader h;
    h.method = proto::STORAGE_WRITE;
    h.payload_len = 0xF0000000u;
    uint8_t raw[rpc::kFrameHeaderSize];
    rpc::EncodeFrameHeader(h, raw);
    iovec hv{raw, sizeof(raw)};
    ASSERT_TRUE((*big)->WriteV(&hv, 1).ok());
    EXPECT_TRUE(ClosedByServer(**big)) << addr;

    EXPECT_TRUE(ping()) << addr << " stopped serving";
  }
}

}  // namespace
}  // namespace shoal::testing
