// shoal-bench-randread: random reads of one file through libshoal's batch
// API (no FUSE), to put next to fio on the mount and on the disk.
//
//   shoal-bench-randread --config client.toml --path /bench.dat --block 4096 --batch 64 --seconds 10
//
// Keeps `inflight` batches of `batch` reads each in flight; prints IOPS and MB/s.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "client/client.h"
#include "common/aligned_buffer.h"
#include "common/config.h"
#include "common/log.h"
#include "common/process.h"

using namespace shoal;

int main(int argc, char** argv) {
  std::string meta_address = "127.0.0.1:9000", path = "/bench.dat";
  ClusterConfig cluster;
  cluster.log_level = "warn";
  uint32_t block = 4096, batch = 64, inflight = 2;
  int64_t seconds = 10;
  ConfigSpec spec("shoal-bench-randread", "random reads through the libshoal batch API");
  spec.Add("meta_address", &meta_address, "host:port of shoal-meta");
  cluster.AddTo(spec);
  spec.Add("path", &path, "file to read");
  spec.Add("block", &block, "bytes per read");
  spec.Add("batch", &batch, "reads per ReadBatch call");
  spec.Add("inflight", &inflight, "ReadBatch calls in flight (one thread each)");
  spec.Add("seconds", &seconds, "how long to run");
  bool exit_now = false;
  Status st = spec.Parse(argc, argv, &exit_now);
  if (!st.ok()) return ExitWithError("shoal-bench-randread", st);
  if (exit_now) return 0;
  InitLogging("bench", cluster.log_level);
  auto creds = cluster.Credentials();
  if (!creds.ok()) return ExitWithError("shoal-bench-randread", creds.status());
  client::ClientOptions co;
  co.meta_address = meta_address;
  co.cluster_id = creds->cluster_id;
  co.cluster_key = creds->key;
  auto c = client::Client::Connect(co);
  if (!c.ok()) return ExitWithError("shoal-bench-randread", c.status());
  auto file = (*c)->Resolve(client::ProcessCaller(), path);
  if (!file.ok()) return ExitWithError("shoal-bench-randread", file.status());
  if (file->size() < block) return ExitWithError("shoal-bench-randread", Error(proto::INVALID_ARGUMENT, "file too small"));
  const uint64_t blocks = file->size() / block;

  std::atomic<uint64_t> reads{0}, errors{0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < inflight; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      AlignedBuffer buf(size_t{block} * batch);
      std::vector<client::BatchReadItem> items(batch);
      while (std::chrono::steady_clock::now() < deadline) {
        for (uint32_t i = 0; i < batch; ++i) {
          items[i] = client::BatchReadItem{};
          items[i].ino = file->ino();
          items[i].offset = (rng() % blocks) * block;
          items[i].length = block;
          items[i].buf = buf.data() + size_t{i} * block;
        }
        (void)(*c)->ReadBatch(items);
        for (const auto& it : items) (it.status.ok() ? reads : errors)++;
      }
    });
  }
  auto start = std::chrono::steady_clock::now();
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.0f %.0f %lu\n", reads / secs, reads * double(block) / secs / 1e6, errors.load());
  return errors > 0 ? 1 : 0;
}
