#include "bench/shoal_bench/workload.h"

#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <chrono>
#include <limits>
#include <memory>
#include <random>
#include <thread>

#include "bench/shoal_bench/pattern.h"
#include "common/aligned_buffer.h"

namespace shoal::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr auto kStallLimit = std::chrono::seconds(60);  // no completion this long: give up

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

struct WorkerOut {
  uint64_t ops = 0, bytes = 0, errors = 0, verify_failures = 0;
  Histogram latency_ns;
  std::string first_error;
  void Note(const std::string& msg) {
    if (first_error.empty()) first_error = msg;
  }
};

// One worker's loop: its slots each carry one read at a time; a completion
// is checked and its slot reused for the next read at once.
class Worker {
 public:
  Worker(const WorkloadOptions& o, const std::vector<FileEntry>& files, std::vector<uint32_t> mine, size_t slot_bytes,
         size_t align, uint64_t budget, int id)
      : o_(o), files_(files), mine_(std::move(mine)), slot_bytes_(slot_bytes), align_(align), budget_(budget),
        rng_(o.seed * 1000003 + static_cast<uint64_t>(id)), buf_(slot_bytes * o.qd, std::max(align, kDirectIoAlign)),
        slots_(o.qd), done_(o.qd), next_(mine_.size()) {}

  void Run(Queue& q, SteadyClock::time_point deadline, WorkerOut* out) {
    out_ = out;
    q_ = &q;
    size_t active = 0;
    for (uint32_t tag = 0; tag < o_.qd; ++tag) active += Issue(tag, SteadyClock::now()) ? 1 : 0;
    auto last_progress = SteadyClock::now();
    while (active > 0) {
      size_t n = q.Reap(done_.data(), done_.size(), 200);
      auto now = SteadyClock::now();
      if (n == 0) {
        if (now - last_progress > kStallLimit) {
          out_->errors += active;
          out_->Note("no read completed for 60 s; " + std::to_string(active) + " abandoned");
          return;
        }
        continue;
      }
      last_progress = now;
      if (o_.seconds > 0 && now >= deadline) stopping_ = true;
      for (size_t i = 0; i < n; ++i) {
        Finish(done_[i], now);
        if (!Issue(done_[i].tag, now)) --active;
      }
    }
  }

 private:
  struct Slot {
    uint32_t file = 0;
    uint64_t offset = 0;
    size_t expected = 0;
    SteadyClock::time_point start;
  };

  // Starts the next read in slot `tag`; false when the run is over for it.
  bool Issue(uint32_t tag, SteadyClock::time_point now) {
    if (stopping_ || issued_ >= budget_) return false;
    Slot& s = slots_[tag];
    size_t length;
    if (!o_.dataset) {
      const uint64_t blocks = files_[0].size / o_.bs;
      s.file = 0;
      s.offset = (rng_() % blocks) * o_.bs;
      s.expected = o_.bs;
      length = o_.bs;
    } else {
      if (next_ == mine_.size()) {  // a new pass over this worker's files, in a new order
        std::shuffle(mine_.begin(), mine_.end(), rng_);
        next_ = 0;
      }
      s.file = mine_[next_++];
      s.offset = 0;
      s.expected = files_[s.file].size;
      length = (s.expected + align_ - 1) / align_ * align_;  // O_DIRECT reads whole blocks; EOF shortens it
    }
    s.start = now;
    ++issued_;
    ReadOp op{s.file, s.offset, length, buf_.data() + size_t{tag} * slot_bytes_, tag};
    if (!q_->Submit(op).ok()) {
      ++out_->ops;
      ++out_->errors;
      return false;  // the slot stays idle: a refusing backend ends the run rather than spin
    }
    return true;
  }

  void Finish(const ReadDone& d, SteadyClock::time_point now) {
    const Slot& s = slots_[d.tag];
    out_->latency_ns.Record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - s.start).count()));
    ++out_->ops;
    if (!d.ok) {
      ++out_->errors;
      return;
    }
    if (d.bytes != s.expected) {
      ++out_->errors;
      out_->Note("short read of " + files_[s.file].path + " at " + std::to_string(s.offset) + ": " +
                 std::to_string(d.bytes) + " of " + std::to_string(s.expected) + " bytes");
      return;
    }
    out_->bytes += d.bytes;
    if (!o_.verify) return;
    const uint8_t* data = buf_.data() + size_t{d.tag} * slot_bytes_;
    int64_t bad = CheckPattern(files_[s.file].index, s.offset, data, d.bytes);
    if (bad >= 0) {
      ++out_->verify_failures;
      out_->Note("verify: " + files_[s.file].path + " byte " + std::to_string(s.offset + static_cast<uint64_t>(bad)) +
                 " differs from the pattern");
    }
  }

  const WorkloadOptions& o_;
  const std::vector<FileEntry>& files_;
  std::vector<uint32_t> mine_;  // dataset: this worker's files (indexes into files_)
  size_t slot_bytes_, align_;
  uint64_t budget_, issued_ = 0;
  std::mt19937_64 rng_;
  AlignedBuffer buf_;  // one region per slot
  std::vector<Slot> slots_;
  std::vector<ReadDone> done_;
  size_t next_;
  bool stopping_ = false;
  WorkerOut* out_ = nullptr;
  Queue* q_ = nullptr;
};

Result<double> ServersCpuSeconds(const std::vector<int>& pids) {
  double sum = 0;
  for (int pid : pids) {
    ASSIGN_OR_RETURN(double s, ProcessCpuSeconds(pid));
    sum += s;
  }
  return sum;
}

}  // namespace

Result<double> ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return Error(proto::NOT_FOUND, "no process " + std::to_string(pid));
  // Fields after the command name (which may hold spaces) start at field 3;
  // utime and stime are fields 14 and 15.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return Error(proto::PROTOCOL_ERROR, "unreadable /proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(line.substr(close + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int field = 3; field <= 15 && fields >> f; ++field) {
    if (field == 14) utime = std::stoull(f);
    if (field == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

Result<WorkloadResult> RunWorkload(Backend& backend, const std::vector<FileEntry>& files, const WorkloadOptions& o) {
  if (files.empty()) return Error(proto::INVALID_ARGUMENT, "no files to read");
  if (o.qd < 1 || o.threads < 1) return Error(proto::INVALID_ARGUMENT, "--qd and --threads must be at least 1");
  if (o.seconds <= 0 && o.ops == 0) return Error(proto::INVALID_ARGUMENT, "give --seconds or --ops");
  const size_t align = backend.alignment();
  size_t slot_bytes;
  if (!o.dataset) {
    if (o.bs == 0 || o.bs % align != 0)
      return Error(proto::INVALID_ARGUMENT, "--bs must be a positive multiple of " + std::to_string(align) +
                                                " for this backend (O_DIRECT)");
    if (files[0].size < o.bs)
      return Error(proto::INVALID_ARGUMENT, files[0].path + " is smaller than one block (--bs)");
    slot_bytes = o.bs;
  } else {
    if (files.size() < static_cast<size_t>(o.threads))
      return Error(proto::INVALID_ARGUMENT, "fewer dataset files than --threads");
    uint64_t largest = 0;
    for (const auto& f : files) largest = std::max(largest, f.size);
    slot_bytes = std::max<size_t>((largest + align - 1) / align * align, align);
  }
  std::vector<std::unique_ptr<Queue>> queues;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) {
    ASSIGN_OR_RETURN(auto q, backend.NewQueue(&files, o.qd, t, o.threads));
    queues.push_back(std::move(q));
    std::vector<uint32_t> mine;
    if (o.dataset)
      for (size_t i = static_cast<size_t>(t); i < files.size(); i += static_cast<size_t>(o.threads))
        mine.push_back(static_cast<uint32_t>(i));
    uint64_t budget = o.ops == 0 ? std::numeric_limits<uint64_t>::max()
                                 : o.ops / static_cast<uint64_t>(o.threads) + (static_cast<uint64_t>(t) < o.ops % static_cast<uint64_t>(o.threads));
    workers.push_back(std::make_unique<Worker>(o, files, std::move(mine), slot_bytes, align, budget, t));
  }
  std::vector<WorkerOut> outs(static_cast<size_t>(o.threads));
  ASSIGN_OR_RETURN(double server_cpu0, ServersCpuSeconds(o.server_pids));
  double cpu0 = SelfCpuSeconds();
  auto start = SteadyClock::now();
  auto deadline = start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(o.seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t)
    threads.emplace_back([&, t] { workers[t]->Run(*queues[t], deadline, &outs[t]); });
  for (auto& t : threads) t.join();
  WorkloadResult r;
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  r.client_cpu_s = SelfCpuSeconds() - cpu0;
  ASSIGN_OR_RETURN(double server_cpu1, ServersCpuSeconds(o.server_pids));
  r.server_cpu_s = server_cpu1 - server_cpu0;
  for (int t = 0; t < o.threads; ++t) {
    const WorkerOut& w = outs[t];
    r.ops += w.ops;
    r.bytes += w.bytes;
    r.errors += w.errors;
    r.verify_failures += w.verify_failures;
    r.latency_ns.Merge(w.latency_ns);
    if (r.first_error.empty()) r.first_error = !queues[t]->first_error().empty() ? queues[t]->first_error() : w.first_error;
    if (r.first_error.empty()) r.first_error = w.first_error;
  }
  return r;
}

}  // namespace shoal::bench
