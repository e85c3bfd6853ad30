// Identity of disks and databases on a real cluster: an emptied, swapped or
// foreign target is refused with a message naming it; formatted, it serves as
// new and the chunks it lost read as EIO, never zeros; meta refuses a lost
// database unless told to initialise, and initialising twice.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/rpc/client.h"
#include "storage/chunk_store.h"
#include "storage/target_stamp.h"
#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

namespace fs = std::filesystem;

// True once the storage server of `node` answers RPCs: it only listens after
// its targets' identities were settled with meta.
bool Serving(const LocalCluster& c, int node) {
  rpc::RpcChannel ch({c.storage_address(node), {"test", c.ClientOptions().cluster_key, 1000}}, rpc::TcpTransport());
  proto::NodeStats s;
  return ch.CallSync(proto::STORAGE_STATS, proto::Empty(), &s, 1000).ok();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::optional<storage::TargetStamp> Stamp(const std::string& dir) {
  auto s = storage::ReadTargetStamp(storage::RealFileEnv(), dir);
  return s.ok() ? *s : std::nullopt;
}

// A file written before a target was lost: which of its chunks lived there.
struct Victim {
  proto::Attr attr;
  std::string data;
  std::vector<uint64_t> lost, kept;  // chunk indexes on the lost target, elsewhere
};

Victim WriteVictim(LocalCluster& c, const std::string& name, uint32_t lost_target) {
  Victim v;
  v.data = RandomString(6 << 20, 7);
  EXPECT_TRUE(WriteFile(c.mount() + name, v.data));
  auto client = c.NewClient();
  EXPECT_TRUE(client);
  auto attr = client->Resolve(client::ProcessCaller(), name);
  EXPECT_TRUE(attr.ok());
  v.attr = *attr;
  const uint64_t chunk = attr->layout().chunk_size();
  for (uint64_t idx = 0; idx * chunk < v.data.size(); ++idx) {
    auto where = client->Place(attr->layout(), idx);
    EXPECT_TRUE(where.ok());
    (where->target_id == lost_target ? v.lost : v.kept).push_back(idx);
  }
  EXPECT_FALSE(v.lost.empty());
  EXPECT_FALSE(v.kept.empty());
  return v;
}

// Chunks that were on the lost disk fail with EIO (never zeros, never old
// bytes); the others read back exactly.
void ExpectLostChunksFail(LocalCluster& c, const std::string& name, const Victim& v) {
  const uint64_t chunk = v.attr.layout().chunk_size();
  int fd = open((c.mount() + name).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<char> buf(64 << 10);
  for (uint64_t idx : v.lost) {
    errno = 0;
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(idx * chunk + 4096));
    EXPECT_EQ(n, -1) << "chunk " << idx << " of a lost disk read " << n << " bytes (zeros?)";
    EXPECT_EQ(errno, EIO) << "chunk " << idx;
  }
  for (uint64_t idx : v.kept) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(idx * chunk + 4096));
    ASSERT_EQ(n, static_cast<ssize_t>(buf.size())) << "chunk " << idx;
    EXPECT_EQ(std::string(buf.data(), buf.size()), v.data.substr(idx * chunk + 4096, buf.size())) << "chunk " << idx;
  }
  close(fd);
}

TEST(IdentityTest, AnEmptiedTargetIsRefusedThenFormattedAndItsLostChunksReadAsEio) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const uint32_t target = LocalCluster::target_of(2);
  const std::string dir = c.target_dir(target);
  Victim v = WriteVictim(c, "/old", target);
  ASSERT_FALSE(HasFailure());

  c.Kill(c.storage_pid(2), SIGTERM);
  for (const auto& e : fs::directory_iterator(dir)) fs::remove_all(e.path());  // the disk's contents are lost

  c.StartStorage(2);  // a restart: no --format
  EXPECT_EQ(c.WaitExit(c.storage_pid(2)), 1) << "shoal-storage served an emptied target";
  std::string log = c.Log("storage2");
  EXPECT_TRUE(Contains(log, dir + ": the directory has no Shoal stamp")) << log;
  EXPECT_FALSE(Stamp(dir).has_value());  // refusing wrote nothing

  c.StartStorage(2, {"--format"});
  ASSERT_TRUE(WaitFor([&] { return Serving(c, 2); })) << c.Log("storage2");
  auto stamp = Stamp(dir);
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->target_id, target);
  EXPECT_GT(stamp->lost_below_inode, v.attr.ino());  // meta said /old may have lost chunks here

  ExpectLostChunksFail(c, "/old", v);

  // The formatted disk serves new data.
  const std::string fresh = RandomString(6 << 20, 8);
  ASSERT_TRUE(WriteFile(c.mount() + "/new", fresh));
  EXPECT_EQ(ReadFile(c.mount() + "/new"), fresh);

  // A restart after that finds its stamp: no format, the loss is remembered.
  c.Kill(c.storage_pid(2), SIGTERM);
  c.StartStorage(2);
  ASSERT_TRUE(WaitFor([&] { return Serving(c, 2); })) << c.Log("storage2");
  EXPECT_EQ(Stamp(dir)->incarnation, stamp->incarnation);
  ExpectLostChunksFail(c, "/old", v);
  EXPECT_EQ(ReadFile(c.mount() + "/new"), fresh);
}

TEST(IdentityTest, ChunkFilesLostFromAnIntactTargetReadAsEio) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const uint32_t target = LocalCluster::target_of(2);
  Victim v = WriteVictim(c, "/old", target);
  ASSERT_FALSE(HasFailure());

  // The disk is fine, its stamp intact; only these chunk files are gone (a
  // careless `rm`, or fsck's doing).
  c.Kill(c.storage_pid(2), SIGTERM);
  for (uint64_t idx : v.lost)
    ASSERT_TRUE(fs::remove(storage::ChunkFilePath(c.target_dir(target), v.attr.ino(), idx))) << idx;
  c.StartStorage(2);
  ASSERT_TRUE(WaitFor([&] { return Serving(c, 2); })) << c.Log("storage2");
  ExpectLostChunksFail(c, "/old", v);

  // Files written since are whole, holes in them still read as zeros.
  const std::string fresh = RandomString(3 << 20, 10);
  ASSERT_TRUE(WriteFile(c.mount() + "/new", fresh));
  ASSERT_EQ(truncate((c.mount() + "/new").c_str(), 12 << 20), 0);
  std::string back = ReadFile(c.mount() + "/new");
  EXPECT_EQ(back.substr(0, fresh.size()), fresh);
  EXPECT_EQ(back.substr(fresh.size()), std::string((12 << 20) - fresh.size(), '\0'));
}

TEST(IdentityTest, SwappedTargetsAreRefusedUntilReformatted) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const uint32_t t2 = LocalCluster::target_of(2), t3 = LocalCluster::target_of(3);
  Victim v = WriteVictim(c, "/old", t2);
  ASSERT_FALSE(HasFailure());

  c.Kill(c.storage_pid(2), SIGTERM);
  c.Kill(c.storage_pid(3), SIGTERM);
  // The disks of nodes 2 and 3 change places.
  fs::rename(c.target_dir(t2), c.dir() + "/swap");
  fs::rename(c.target_dir(t3), c.target_dir(t2));
  fs::rename(c.dir() + "/swap", c.target_dir(t3));

  c.StartStorage(2);
  c.StartStorage(3);
  EXPECT_EQ(c.WaitExit(c.storage_pid(2)), 1) << "node 2 served node 3's disk";
  EXPECT_EQ(c.WaitExit(c.storage_pid(3)), 1) << "node 3 served node 2's disk";
  std::string log2 = c.Log("storage2"), log3 = c.Log("storage3");
  EXPECT_TRUE(Contains(log2, c.target_dir(t2) + ": the directory is stamped for target " + std::to_string(t3))) << log2;
  EXPECT_TRUE(Contains(log3, c.target_dir(t3) + ": the directory is stamped for target " + std::to_string(t2))) << log3;

  // --format (only empty, unstamped targets) does not touch them either.
  c.StartStorage(2, {"--format"});
  EXPECT_EQ(c.WaitExit(c.storage_pid(2)), 1);

  // Refusing touched nothing: the disks back in place, every byte reads back.
  fs::rename(c.target_dir(t2), c.dir() + "/swap");
  fs::rename(c.target_dir(t3), c.target_dir(t2));
  fs::rename(c.dir() + "/swap", c.target_dir(t3));
  c.StartStorage(2);
  c.StartStorage(3);
  ASSERT_TRUE(WaitFor([&] { return Serving(c, 2) && Serving(c, 3); })) << c.Log("storage2") << c.Log("storage3");
  EXPECT_EQ(ReadFile(c.mount() + "/old"), v.data);

  // Node 2 gets a copy of node 3's disk and is told to re-format it: it
  // serves it as new, and what /old had on target 2 reads as EIO.
  c.Kill(c.storage_pid(2), SIGTERM);
  fs::remove_all(c.target_dir(t2));
  fs::copy(c.target_dir(t3), c.target_dir(t2), fs::copy_options::recursive);
  c.StartStorage(2);
  EXPECT_EQ(c.WaitExit(c.storage_pid(2)), 1);
  c.StartStorage(2, {"--format-target=" + std::to_string(t2)});
  ASSERT_TRUE(WaitFor([&] { return Serving(c, 2); })) << c.Log("storage2");
  auto stamp = Stamp(c.target_dir(t2));
  ASSERT_TRUE(stamp.has_value());
  EXPECT_EQ(stamp->target_id, t2);
  EXPECT_NE(stamp->incarnation, Stamp(c.target_dir(t3))->incarnation);
  EXPECT_GT(stamp->lost_below_inode, v.attr.ino());
  ExpectLostChunksFail(c, "/old", v);
  const std::string fresh = RandomString(3 << 20, 9);
  ASSERT_TRUE(WriteFile(c.mount() + "/new", fresh));
  EXPECT_EQ(ReadFile(c.mount() + "/new"), fresh);
}

TEST(IdentityTest, MetaRefusesALostDatabaseAndASecondInitAndItsOldTargetsAreForeignToANewCluster) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(/*mount=*/false)) << c.error();
  const std::string db = c.dir() + "/meta";
  c.Kill(c.meta_pid(), SIGTERM);

  fs::rename(db, db + ".away");  // the database is lost
  c.StartMeta();  // a restart: no --init
  EXPECT_EQ(c.WaitExit(c.meta_pid()), 1) << "shoal-meta started a fresh namespace over a lost database";
  std::string log = c.Log("meta");
  EXPECT_TRUE(Contains(log, "no Shoal database in " + db)) << log;
  EXPECT_TRUE(Contains(log, "--init")) << log;
  EXPECT_FALSE(fs::exists(db + "/CURRENT"));

  fs::remove_all(db);
  fs::rename(db + ".away", db);
  c.StartMeta({"--init"});  // over an existing cluster
  EXPECT_EQ(c.WaitExit(c.meta_pid()), 1) << "shoal-meta --init replaced an existing cluster";
  EXPECT_TRUE(Contains(c.Log("meta"), "--init: the database in " + db + " already holds cluster")) << c.Log("meta");

  c.StartMeta();  // the database is back: meta serves it
  ASSERT_TRUE(c.WaitNodesOnline(LocalCluster::kNodes));
  c.Kill(c.meta_pid(), SIGTERM);

  // A new cluster in its place: the old targets belong to another cluster.
  fs::remove_all(db);
  c.StartMeta({"--init"});
  ASSERT_TRUE(WaitFor([&] { return c.NewClient() != nullptr; })) << c.Log("meta");
  c.Kill(c.storage_pid(1), SIGTERM);
  c.StartStorage(1);
  EXPECT_EQ(c.WaitExit(c.storage_pid(1)), 1) << "a target of the old cluster was served by the new one";
  std::string log1 = c.Log("storage1");
  EXPECT_TRUE(Contains(log1, "is stamped for cluster " + Stamp(c.target_dir(LocalCluster::target_of(1)))->cluster_uuid))
      << log1;
}

// deploy/local-cluster.sh initialises and formats on its first `up` only: a
// second `up` after `down` serves the same cluster, and a lost meta database
// is refused rather than replaced.
TEST(IdentityTest, LocalClusterScriptInitialisesOnceAndRefusesALostDatabase) {
  const std::string home = "/tmp/shoal-lc-id-" + std::to_string(getpid());
  fs::remove_all(home);
  int port = FreePort();
  while (port > 30000) port = FreePort();  // the script also uses port+100..port+103
  const std::string env =
      "SHOAL_HOME=" + home + " SHOAL_PORT=" + std::to_string(port) + " SHOAL_BUILD=" SHOAL_BIN_DIR " ";
  const std::string script = env + SHOAL_SOURCE_DIR "/deploy/local-cluster.sh ";
  struct Down {
    std::string cmd;
    ~Down() { Shell(cmd); }
  } down{script + "down >/dev/null 2>&1; rm -rf " + home};
  std::string out;
  ASSERT_EQ(Shell(script + "up 2>&1", &out), 0) << out;
  const std::string data = RandomString(2 << 20, 11);
  ASSERT_TRUE(WriteFile(home + "/mnt/kept", data));
  ASSERT_EQ(Shell(script + "down 2>&1", &out), 0) << out;
  auto stamp = Stamp(home + "/target1");
  ASSERT_TRUE(stamp.has_value());

  out.clear();
  ASSERT_EQ(Shell(script + "up 2>&1", &out), 0) << out;
  EXPECT_EQ(ReadFile(home + "/mnt/kept"), data);
  EXPECT_EQ(Stamp(home + "/target1")->incarnation, stamp->incarnation);  // not formatted again
  ASSERT_EQ(Shell(script + "down 2>&1", &out), 0) << out;

  fs::remove_all(home + "/meta");
  out.clear();
  EXPECT_NE(Shell(script + "up 2>&1", &out), 0) << out;
  EXPECT_TRUE(Contains(out, "no Shoal database in " + home + "/meta")) << out;  // the script says why
  EXPECT_FALSE(fs::exists(home + "/meta/CURRENT"));  // and no fresh database took its place
}

}  // namespace
}  // namespace shoal::testing
