// kill -9 of shoal-meta in the middle of a storm of creates, renames (within
// and across directories, over existing files) and unlinks: after a restart
// every acknowledged operation is there, and the one operation each writer
// had in flight is either wholly done or not at all (names and inode numbers
// of both directories compared with the writer's own record), and the inode
// count matches what is reachable.
//
// Group commit (meta/kv.h) answers only after the WAL sync that covers the
// operation; a kill -9 keeps what reached the WAL file, so this test checks
// that nothing is answered before it is applied whole, and that a restart
// replays it whole. Power loss (the sync itself) is covered by the unit tests
// of the group commit (tests/meta/kv_test.cc).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

using Names = std::map<std::string, uint64_t>;  // "a/name" -> inode (0: any)

struct Op {
  enum Kind { kCreate, kRename, kUnlink } kind;
  std::string src, dst;  // "a/x" or "b/x"
};

// One writer: its own two directories and what it was told happened there.
struct Writer {
  uint64_t dir_ino[2] = {0, 0};
  Names acked;                   // exactly the state after every acknowledged op
  std::optional<Op> in_doubt;    // the op that failed when meta died
  uint64_t ops = 0;
  uint64_t next_name = 0;
  std::string error;
};

uint64_t DirOf(const Writer& w, const std::string& n) { return w.dir_ino[n[0] == 'b']; }
std::string BaseOf(const std::string& n) { return n.substr(2); }

// Applies `op` to `names`; `ino` is the created file's inode (0: unknown).
Names Apply(Names names, const Op& op, uint64_t ino) {
  switch (op.kind) {
    case Op::kCreate: names[op.src] = ino; break;
    case Op::kUnlink: names.erase(op.src); break;
    case Op::kRename: {
      uint64_t moved = names.at(op.src);
      names.erase(op.src);
      names[op.dst] = moved;
      break;
    }
  }
  return names;
}

bool Matches(const Names& actual, const Names& expected) {
  if (actual.size() != expected.size()) return false;
  for (const auto& [name, ino] : expected) {
    auto it = actual.find(name);
    if (it == actual.end() || (ino != 0 && it->second != ino)) return false;
  }
  return true;
}

std::string Show(const Names& n) {
  std::string s;
  for (const auto& [name, ino] : n) s += name + "=" + std::to_string(ino) + " ";
  return s;
}

// Runs until an operation fails (meta died) or `stop`.
void Storm(client::Client* cl, Writer* w, uint64_t seed, std::atomic<uint64_t>* total, std::atomic<bool>* stop) {
  const auto caller = client::ProcessCaller();
  std::mt19937_64 rng(seed);
  while (!stop->load()) {
    Op op;
    std::vector<std::string> present;
    for (const auto& [n, ino] : w->acked) present.push_back(n);
    uint64_t r = rng() % 10;
    std::string fresh = std::string(rng() % 2 ? "a/" : "b/") + "f" + std::to_string(w->next_name++);
    if (present.size() < 4 || r < 5) {
      op = {Op::kCreate, fresh, ""};
    } else if (r < 8) {
      // Rename to a fresh name or over another present file, in either directory.
      std::string src = present[rng() % present.size()];
      std::string dst = rng() % 3 == 0 ? present[rng() % present.size()] : fresh;
      if (dst == src) dst = fresh;
      op = {Op::kRename, src, dst};
    } else {
      op = {Op::kUnlink, present[rng() % present.size()], ""};
    }
    Status st;
    uint64_t ino = 0;
    if (op.kind == Op::kCreate) {
      auto a = cl->Create(caller, DirOf(*w, op.src), BaseOf(op.src), 0644, true);
      st = a.status();
      if (a.ok()) ino = a->ino();
    } else if (op.kind == Op::kRename) {
      st = cl->Rename(caller, DirOf(*w, op.src), BaseOf(op.src), DirOf(*w, op.dst), BaseOf(op.dst), false);
    } else {
      st = cl->Unlink(caller, DirOf(*w, op.src), BaseOf(op.src));
    }
    if (!st.ok()) {
      w->in_doubt = op;
      w->error = st.ToString();
      return;
    }
    w->acked = Apply(std::move(w->acked), op, ino);
    ++w->ops;
    total->fetch_add(1);
  }
}

// Both directories of a writer as meta sees them now.
Names List(client::Client* cl, const Writer& w) {
  Names out;
  for (int d = 0; d < 2; ++d) {
    std::string after;
    for (;;) {
      auto page = cl->ReadDir(client::ProcessCaller(), w.dir_ino[d], after, 1000, false);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return out;
      for (const auto& e : page->entries()) {
        out[std::string(d ? "b/" : "a/") + e.name()] = e.ino();
        after = e.name();
      }
      if (page->eof()) break;
    }
  }
  return out;
}

TEST(MetaCrashTest, KillNineDuringACreateRenameUnlinkStormLosesNothingAcknowledged) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(/*mount=*/false)) << c.error();
  constexpr int kWriters = 4;
  std::vector<Writer> writers(kWriters);
  {
    auto cl = c.NewClient();
    ASSERT_TRUE(cl);
    const auto caller = client::ProcessCaller();
    auto storm = cl->Mkdir(caller, 1, "storm", 0755);
    ASSERT_TRUE(storm.ok()) << storm.status().ToString();
    for (int t = 0; t < kWriters; ++t)
      for (int d = 0; d < 2; ++d) {
        auto dir = cl->Mkdir(caller, storm->ino(), "w" + std::to_string(t) + (d ? "b" : "a"), 0755);
        ASSERT_TRUE(dir.ok()) << dir.status().ToString();
        writers[t].dir_ino[d] = dir->ino();
      }
  }

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto cl = c.NewClient();
    ASSERT_TRUE(cl);
    std::atomic<uint64_t> total{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kWriters; ++t)
      threads.emplace_back(Storm, cl.get(), &writers[t], 1000 * round + t, &total, &stop);
    // Kill it in full flow, once a few hundred operations were acknowledged.
    bool flowing = WaitFor([&] { return total.load() >= 300; }, std::chrono::seconds(60));
    c.Kill(c.meta_pid(), SIGKILL);
    stop = true;  // a writer whose calls still succeed (none should) stops too
    for (auto& th : threads) th.join();
    ASSERT_TRUE(flowing) << "the storm never got going: " << total.load() << " ops";
    cl.reset();

    c.StartMeta();
    auto after = c.NewClient();
    ASSERT_TRUE(after);
    ASSERT_TRUE(WaitFor([&] { return after->GetAttr(1).ok(); })) << c.Log("meta");

    uint64_t files = 0;
    for (int t = 0; t < kWriters; ++t) {
      Writer& w = writers[t];
      Names actual = List(after.get(), w);
      bool ok = Matches(actual, w.acked);
      if (!ok && w.in_doubt) ok = Matches(actual, Apply(w.acked, *w.in_doubt, 0));
      EXPECT_TRUE(ok) << "writer " << t << " (" << w.ops << " ops acknowledged; in flight: "
                      << (w.in_doubt ? w.in_doubt->src + " -> " + w.in_doubt->dst : "none") << ", failed with "
                      << w.error << ")\n  meta has:  " << Show(actual) << "\n  acknowledged: " << Show(w.acked);
      // Every entry leads to a whole inode: one link, a regular file.
      for (const auto& [name, ino] : actual) {
        auto a = after->GetAttr(ino);
        ASSERT_TRUE(a.ok()) << name << ": " << a.status().ToString();
        EXPECT_EQ(a->nlink(), 1u) << name;
        EXPECT_EQ(a->type(), proto::REGULAR) << name;
      }
      files += actual.size();
      // What meta has is the truth for the next round.
      w.acked = actual;
      w.in_doubt.reset();
      w.error.clear();
    }
    // The live-inode count is kept in the same batches: root, /storm, the
    // writers' directories and their files, nothing half-freed or leaked.
    auto fs = after->StatFs();
    ASSERT_TRUE(fs.ok());
    EXPECT_EQ(fs->files(), 2 + 2 * kWriters + files);
  }
}

}  // namespace
}  // namespace shoal::testing
