// Data through a real mount and through libshoal, against a reference file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    memcpy(&v[i], &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<uint8_t>(rng());
  return v;
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), data.size());
  ASSERT_TRUE(out.good()) << path;
}

TEST(DataTest, BigFileAndTreeRoundTripThroughMountAndLibrary) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const size_t kSize = 256u << 20;
  auto ref = RandomBytes(kSize, 1);
  const std::string ref_path = c.dir() + "/ref.bin";
  WriteFile(ref_path, ref);
  const std::string big = c.mount() + "/big.bin";
  ASSERT_EQ(Shell("cp " + ref_path + " " + big), 0);

  // Byte-exact through the mount.
  {
    int fd = open(big.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> buf(1 << 20);
    size_t off = 0;
    for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0; off += n)
      ASSERT_EQ(memcmp(buf.data(), ref.data() + off, n), 0) << "at " << off;
    EXPECT_EQ(off, kSize);
    close(fd);
  }
  // Byte-exact through libshoal.
  auto client = c.NewClient();
  ASSERT_TRUE(client);
  auto attr = client->Resolve(client::ProcessCaller(), "/big.bin");
  ASSERT_TRUE(attr.ok()) << attr.status().ToString();
  ASSERT_EQ(attr->size(), kSize);
  {
    std::vector<uint8_t> buf(16 << 20);
    for (size_t off = 0; off < kSize; off += buf.size()) {
      auto n = client->Read(*attr, off, buf.size(), buf.data());
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      ASSERT_EQ(*n, buf.size());
      ASSERT_EQ(memcmp(buf.data(), ref.data() + off, *n), 0) << "at " << off;
    }
  }
  // 10,000 random reads of 1 B - 2 MiB, crossing chunk boundaries and the end of file.
  {
    int fd = open(big.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::mt19937_64 rng(7);
    std::vector<uint8_t> buf(2 << 20);
    for (int i = 0; i < 10000; ++i) {
      size_t len = 1 + rng() % (2 << 20);
      size_t off = rng() % (kSize + (1 << 20));
      ssize_t n = pread(fd, buf.data(), len, off);
      size_t want = off >= kSize ? 0 : std::min(len, kSize - off);
      ASSERT_EQ(n, static_cast<ssize_t>(want)) << "read " << len << " at " << off;
      ASSERT_EQ(memcmp(buf.data(), ref.data() + off, want), 0) << "read " << len << " at " << off;
    }
    close(fd);
  }
  // The chunks are spread over every server.
  std::string out;
  ASSERT_EQ(Shell(c.cli() + " stat /big.bin", &out), 0);
  for (int node = 1; node <= LocalCluster::kNodes; ++node)
    EXPECT_NE(out.find("node " + std::to_string(node) + " "), std::string::npos) << out.substr(0, 2000);

  // A tree of 1,000 small files.
  const std::string tree = c.dir() + "/tree";
  std::mt19937 rng(3);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  for (int i = 0; i < 1000; ++i) {
    std::string rel = "d" + std::to_string(i % 10) + "/s" + std::to_string(i % 3) + "/f" + std::to_string(i);
    std::filesystem::create_directories(tree + "/" + rel.substr(0, rel.rfind('/')));
    files.emplace_back(rel, RandomBytes(rng() % (96 << 10), 100 + i));
    WriteFile(tree + "/" + rel, files.back().second);
  }
  ASSERT_EQ(Shell("cp -r " + tree + " " + c.mount() + "/tree"), 0);
  EXPECT_EQ(Shell("diff -r " + tree + " " + c.mount() + "/tree"), 0);
  for (const auto& [rel, data] : files) {
    auto a = client->Resolve(client::ProcessCaller(), "/tree/" + rel);
    ASSERT_TRUE(a.ok()) << rel;
    std::vector<uint8_t> got(data.size() + 10);
    auto n = client->Read(*a, 0, got.size(), got.data());
    ASSERT_TRUE(n.ok()) << rel;
    ASSERT_EQ(*n, data.size()) << rel;
    ASSERT_EQ(memcmp(got.data(), data.data(), data.size()), 0) << rel;
  }
  // The batch API: many reads at once, each with its own result.
  std::vector<client::BatchReadItem> items(200);
  std::vector<std::vector<uint8_t>> bufs(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    items[i].ino = attr->ino();
    items[i].offset = (i * 7919 * 4096) % kSize;
    items[i].length = 128 << 10;
    bufs[i].resize(items[i].length);
    items[i].buf = bufs[i].data();
  }
  items.back().ino = 999999;  // no such file: only this item fails
  ASSERT_TRUE(client->ReadBatch(items).ok());
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    ASSERT_TRUE(items[i].status.ok()) << items[i].status.ToString();
    size_t want = std::min<size_t>(items[i].length, kSize - items[i].offset);
    ASSERT_EQ(items[i].bytes, want);
    ASSERT_EQ(memcmp(bufs[i].data(), ref.data() + items[i].offset, want), 0);
  }
  EXPECT_EQ(items.back().status.code(), proto::NOT_FOUND);
}

TEST(DataTest, DeletedFilesAreReclaimedFromStorage) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string f = c.mount() + "/doomed";
  WriteFile(f, RandomBytes(8 << 20, 9));
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  auto chunk_files = [&] {
    int n = 0;
    for (int node = 1; node <= LocalCluster::kNodes; ++node) {
      std::string d = c.target_dir(node * 100 + 1) + "/chunks";
      if (!std::filesystem::exists(d)) continue;
      for (auto& e : std::filesystem::recursive_directory_iterator(d)) n += e.is_regular_file();
    }
    return n;
  };
  EXPECT_EQ(chunk_files(), 8);
  ASSERT_EQ(unlink(f.c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return chunk_files() == 0; })) << chunk_files() << " chunk files remain";
}

}  // namespace
}  // namespace shoal::testing
