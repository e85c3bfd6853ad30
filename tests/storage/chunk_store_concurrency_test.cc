// Concurrency of the chunk store, checked against a model: writers racing on
// overlapping ranges of one chunk, truncates and removes racing writes, and
// readers during all of it. The store's committed versions give the order the
// writes took effect in; the model replays them in that order and must end
// with the chunk's final bytes, and every read must equal the model's chunk at
// some version (never a mix, never bytes nobody wrote), with each reader's
// versions never going back.
#include <algorithm>
#include <atomic>
#include <thread>

#include "storage/chunk_store.h"
#include "tests/storage/store_fixture.h"

namespace shoal::storage {
namespace {

using store_test::Backends;
using store_test::ChunkStoreTest;

constexpr uint32_t kSmall = 64 << 10;

template <typename B>
class ChunkStoreConcurrencyTest : public ChunkStoreTest<B> {};
TYPED_TEST_SUITE(ChunkStoreConcurrencyTest, Backends);

// Bytes of write `id` at chunk position x: never zero, different per write.
uint8_t Pattern(uint32_t id, uint32_t x) {
  uint32_t h = (id * 2654435761u) ^ (x * 2246822519u);
  h ^= h >> 15;
  return static_cast<uint8_t>(h | 1);
}

struct WriteRec {
  uint32_t id, offset, length;
  uint64_t version;
};
struct ReadRec {
  uint32_t offset;
  std::string bytes;
};

std::string Bytes(uint32_t id, uint32_t off, uint32_t len) {
  std::string s(len, '\0');
  for (uint32_t i = 0; i < len; ++i) s[i] = static_cast<char>(Pattern(id, off + i));
  return s;
}

// The chunk after each version: states[v] for v = 0..n. A model chunk is its
// bytes and its length (bytes past the length read as zeros).
struct ModelChunk {
  std::string bytes = std::string(kSmall, '\0');
  uint32_t len = 0;
  void Write(const WriteRec& w) {
    bytes.replace(w.offset, w.length, Bytes(w.id, w.offset, w.length));
    len = std::max(len, w.offset + w.length);
  }
  void Cut(uint32_t keep) {
    if (keep >= len) return;
    std::fill(bytes.begin() + keep, bytes.end(), '\0');
    len = keep;
  }
};

// Checks each reader's reads against the states: each read equals some state,
// at a version no lower than that reader's previous read.
// Returns "" or what failed.
std::string ReadsMismatch(const std::vector<std::vector<ReadRec>>& readers, const std::vector<std::string>& states) {
  for (const auto& reads : readers) {
    size_t low = 0;
    for (const auto& r : reads) {
      size_t v = low;
      while (v < states.size() && states[v].compare(r.offset, r.bytes.size(), r.bytes) != 0) ++v;
      if (v == states.size()) {
        const std::string& f = states[low];
        size_t first = 0, last = 0, n = 0;
        for (size_t i = 0; i < r.bytes.size(); ++i)
          if (r.bytes[i] != f[r.offset + i]) {
            if (!n++) first = i;
            last = i;
          }
        return "(vs version " + std::to_string(low) + ": " + std::to_string(n) + " bytes differ in [" +
               std::to_string(first) + ", " + std::to_string(last) + "], read byte " +
               std::to_string(static_cast<uint8_t>(r.bytes[first])) + ") a read of " + std::to_string(r.bytes.size()) + " bytes at " + std::to_string(r.offset) +
               " matches no committed version at or after " + std::to_string(low);
      }
      low = v;
    }
  }
  return "";
}

void CheckReads(const std::vector<std::vector<ReadRec>>& readers, const std::vector<std::string>& states) {
  EXPECT_EQ(ReadsMismatch(readers, states), "");
}

// Readers that read random ranges of (inode, 0) until `stop`.
template <typename Test>
std::vector<std::thread> StartReaders(Test* t, uint64_t inode, int n, std::atomic<bool>* stop,
                                      std::vector<std::vector<ReadRec>>* out) {
  out->resize(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([t, inode, r, stop, out] {
      std::mt19937 rng(1000 + r);
      while (!stop->load()) {
        uint32_t off = rng() % kSmall;
        uint32_t len = 1 + rng() % std::min<uint32_t>(kSmall - off, 16384);
        auto got = t->Read(inode, 0, off, len, kSmall);
        if (got.ok()) (*out)[r].push_back(ReadRec{off, std::move(*got)});
        else ADD_FAILURE() << got.status().ToString();
      }
    });
  return threads;
}

TYPED_TEST(ChunkStoreConcurrencyTest, OverlappingWritersAndReadersMatchTheVersionOrder) {
  constexpr int kWriters = 2, kWrites = 40;
  std::vector<std::vector<WriteRec>> done(kWriters);
  std::atomic<bool> stop{false};
  std::vector<std::vector<ReadRec>> reads;
  auto readers = StartReaders(this, 11, 2, &stop, &reads);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([this, w, &done] {
      std::mt19937 rng(w + 1);
      for (int i = 0; i < kWrites; ++i) {
        uint32_t id = static_cast<uint32_t>(w * kWrites + i + 1);
        uint32_t off = rng() % (kSmall / 2);
        uint32_t len = 1 + rng() % (kSmall / 2);
        auto v = this->WriteV(11, 0, off, Bytes(id, off, len), kSmall);
        ASSERT_TRUE(v.ok()) << v.status().ToString();
        done[w].push_back(WriteRec{id, off, len, *v});
      }
    });
  for (auto& t : writers) t.join();
  stop = true;
  for (auto& t : readers) t.join();

  std::vector<WriteRec> all;
  for (auto& d : done) all.insert(all.end(), d.begin(), d.end());
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.version < b.version; });
  ASSERT_EQ(all.size(), size_t{kWriters * kWrites});
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i].version, i + 1) << "versions are 1..n, each once";
  ModelChunk m;
  std::vector<std::string> states{m.bytes};
  for (const auto& w : all) {
    m.Write(w);
    states.push_back(m.bytes);
  }
  EXPECT_EQ(*this->Read(11, 0, 0, kSmall, kSmall), states.back()) << "the last committed write wins";
  CheckReads(reads, states);
}

TYPED_TEST(ChunkStoreConcurrencyTest, TruncatesRacingWritesAreAtomic) {
  constexpr int kWrites = 50, kCuts = 6;
  std::vector<WriteRec> writes;
  std::vector<uint32_t> cuts;
  std::atomic<bool> stop{false};
  std::vector<std::vector<ReadRec>> reads;
  auto readers = StartReaders(this, 12, 1, &stop, &reads);
  std::thread writer([&] {
    std::mt19937 rng(7);
    for (int i = 0; i < kWrites; ++i) {
      uint32_t off = rng() % kSmall, len = 1 + rng() % std::min<uint32_t>(kSmall - off, 20000);
      auto v = this->WriteV(12, 0, off, Bytes(i + 1, off, len), kSmall);
      ASSERT_TRUE(v.ok()) << v.status().ToString();
      writes.push_back(WriteRec{static_cast<uint32_t>(i + 1), off, len, *v});
    }
  });
  std::thread cutter([&] {
    std::mt19937 rng(8);
    for (int i = 0; i < kCuts; ++i) {
      uint32_t keep = 1 + rng() % (kSmall - 1);  // never 0: a chunk cut to nothing is deleted
      ASSERT_TRUE(this->store_->Truncate(12, keep, kSmall).ok());
      cuts.push_back(keep);
      std::this_thread::yield();
    }
  });
  writer.join();
  cutter.join();
  stop = true;
  for (auto& t : readers) t.join();
  std::string final_bytes = *this->Read(12, 0, 0, kSmall, kSmall);

  // Each cut that shortened the chunk took one version: the gaps in the
  // writes' versions. Which cuts those were is not known; some assignment of
  // cuts (in their order) to the gaps must reproduce the final bytes.
  uint64_t last = writes.back().version;
  std::vector<uint64_t> gaps;
  for (uint64_t v = 1, i = 0; v <= last; ++v) {
    if (i < writes.size() && writes[i].version == v) ++i;
    else gaps.push_back(v);
  }
  bool matched = false;
  std::string mismatch;
  // `extra`: effective cuts after the last write (they took versions no write saw).
  for (size_t extra = 0; gaps.size() + extra <= cuts.size() && !matched; ++extra) {
    size_t k = gaps.size() + extra;
    if (k > cuts.size()) break;
    std::vector<bool> pick(cuts.size(), false);
    std::fill(pick.begin(), pick.begin() + k, true);
    do {
      ModelChunk m;
      std::vector<std::string> states{m.bytes};
      size_t wi = 0, ci = 0;
      bool ok = true;
      auto next_cut = [&] {
        while (!pick[ci]) ++ci;
        uint32_t keep = cuts[ci++];
        if (keep >= m.len) ok = false;  // an effective cut must shorten
        m.Cut(keep);
        states.push_back(m.bytes);
      };
      for (uint64_t v = 1; v <= last && ok; ++v) {
        if (wi < writes.size() && writes[wi].version == v) {
          m.Write(writes[wi++]);
          states.push_back(m.bytes);
        } else {
          next_cut();
        }
      }
      for (size_t e = 0; e < extra && ok; ++e) next_cut();
      // Orders that end the same may differ on the way: one of them must
      // also explain every read.
      if (ok && m.bytes == final_bytes) {
        mismatch = ReadsMismatch(reads, states);
        if (mismatch.empty()) {
          matched = true;
          break;
        }
      }
    } while (std::prev_permutation(pick.begin(), pick.end()));
  }
  EXPECT_TRUE(matched) << "no order of the cuts among the writes explains the final bytes and every read ("
                       << gaps.size() << " cuts took versions) " << mismatch;
}

TYPED_TEST(ChunkStoreConcurrencyTest, RemovesRacingWritesLeaveNoMix) {
  constexpr int kWrites = 40, kRemoves = 3;
  std::vector<WriteRec> writes;
  std::atomic<int> tick{0};
  int last_write_start = 0;
  std::atomic<int> last_remove_end{0};
  std::thread writer([&] {
    std::mt19937 rng(9);
    for (int i = 0; i < kWrites; ++i) {
      uint32_t off = rng() % kSmall, len = 1 + rng() % std::min<uint32_t>(kSmall - off, 20000);
      last_write_start = ++tick;
      auto v = this->WriteV(13, 0, off, Bytes(i + 1, off, len), kSmall);
      ASSERT_TRUE(v.ok()) << v.status().ToString();
      writes.push_back(WriteRec{static_cast<uint32_t>(i + 1), off, len, *v});
    }
  });
  std::thread remover([&] {
    for (int i = 0; i < kRemoves; ++i) {
      ASSERT_TRUE(this->store_->Remove(13).ok());
      last_remove_end = ++tick;
      std::this_thread::yield();
    }
  });
  writer.join();
  remover.join();
  // A remove resets the chunk: the writes after the last one it cut restart at
  // version 1 and count up by one.
  size_t run = 0;
  for (size_t i = 1; i < writes.size(); ++i) {
    if (writes[i].version == 1) run = i;
    else ASSERT_EQ(writes[i].version, writes[i - 1].version + 1) << "write " << i;
  }
  ASSERT_EQ(writes[run].version, 1u);
  ModelChunk m;
  for (size_t i = run; i < writes.size(); ++i) m.Write(writes[i]);
  std::string final_bytes = *this->Read(13, 0, 0, kSmall, kSmall);
  if (final_bytes == std::string(kSmall, '\0')) {
    // Only a remove that finished after the last write started may leave nothing.
    EXPECT_GT(last_remove_end.load(), last_write_start) << "acknowledged writes vanished";
  } else {
    EXPECT_EQ(final_bytes, m.bytes) << "the chunk must be exactly the writes since the last remove";
  }
}

}  // namespace
}  // namespace shoal::storage
